"""Convert an authors' published OREPA ImageNet checkpoint to an mmpretrain one.

    python tools/convert_published.py SRC DST --arch ARCH [--force]

ARCH names a config ``configs/imagenet/published/orepa-ARCH_in1k.py``; the
result is in train form (every branch kept) and loads with ``strict=True``
into that config's model. SRC is read weights-only; DST is written
atomically and never overwritten without ``--force`` (SRC never, even with it).
"""
import argparse
import os
from pathlib import Path

from mmengine.config import Config

from mmorepa import __version__
from mmorepa.engine import (ReparamError, build_model, convert_published_state_dict,
                            is_same_file, read_checkpoint, save_atomic, tool_main)
from mmorepa.engine.published import unwrap

PUBLISHED_CONFIGS = Path(__file__).resolve().parents[1] / 'configs' / 'imagenet' / 'published'


def published_archs():
    """ARCH of every config in ``configs/imagenet/published/``."""
    return sorted(path.name[len('orepa-'):-len('_in1k.py')]
                  for path in PUBLISHED_CONFIGS.glob('orepa-*_in1k.py'))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='published checkpoint (e.g. a .pth.tar)')
    parser.add_argument('dst', help='mmpretrain checkpoint to write')
    parser.add_argument('--arch', required=True, choices=published_archs(),
                        help=f'published model: {", ".join(published_archs())}')
    parser.add_argument('--force', action='store_true',
                        help='overwrite DST if it exists (SRC is never overwritten)')
    return parser.parse_args(argv)


def check_paths(src: str, dst: str, force: bool) -> None:
    """Refuse before any work: DST must be neither SRC nor, unless ``force``, a file."""
    if os.path.exists(src) and is_same_file(src, dst):
        raise ReparamError(f'DST {dst!r} is the same file as SRC; refusing to overwrite the '
                           'published checkpoint')
    if os.path.isdir(dst):
        raise ReparamError(f'DST {dst!r} is a directory; give a file name')
    if os.path.lexists(dst) and not force:
        raise ReparamError(f'DST {dst!r} exists; pass --force to overwrite it')


@tool_main
def main(argv=None):
    args = parse_args(argv)
    check_paths(args.src, args.dst, args.force)
    config = PUBLISHED_CONFIGS / f'orepa-{args.arch}_in1k.py'
    print(f'[1/3] loading {args.src}', flush=True)
    published = read_checkpoint(args.src)
    print(f'[2/3] converting into the model of {config.name}', flush=True)
    state_dict = convert_published_state_dict(published, build_model(Config.fromfile(config)))
    print(f'[3/3] saving {args.dst}', flush=True)
    meta = dict(arch=args.arch, source=os.path.basename(args.src),
                converter='tools/convert_published.py', mmorepa_version=__version__,
                config=f'configs/imagenet/published/{config.name}')
    save_atomic(dict(state_dict=state_dict, meta=meta), args.dst, source=args.src)
    print(f'done: read {len(unwrap(published))} published tensors, wrote {len(state_dict)} '
          f'converted tensors to {args.dst}\nuse it with {meta["config"]}', flush=True)


if __name__ == '__main__':
    raise SystemExit(main())
