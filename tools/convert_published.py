"""Convert an authors' published OREPA ImageNet checkpoint to an mmpretrain one.

The result is in train form (every branch kept) and loads with ``strict=True``
into the model of ``configs/imagenet/published/orepa-<arch>_in1k.py``::

    python tools/convert_published.py orepa_res18.pth.tar \\
        checkpoints/orepa-resnet18_in1k.pth --arch resnet18

SRC is read with ``torch.load(weights_only=True)``; DST is written atomically
and never overwritten without ``--force`` (SRC never, even with it).
"""
import argparse
import os
import sys
from typing import List, Optional

PUBLISHED_CONFIG = 'configs/imagenet/published/orepa-{arch}_in1k.py'


class ConversionError(Exception):
    """A problem the user can fix; reported as one message, without a traceback."""


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """SRC, DST, ``--arch`` and ``--force`` from the command line."""
    parser = argparse.ArgumentParser(
        description='Convert a published OREPA ImageNet checkpoint to an mmpretrain '
        'checkpoint in train form')
    parser.add_argument('src', help='published checkpoint (e.g. a .pth.tar)')
    parser.add_argument('dst', help='mmpretrain checkpoint to write')
    parser.add_argument(
        '--arch', required=True,
        help='published model: resnet18, resnet34, resnet50, resnet101, wrn18-2x, '
        'resnext50, repvgg-a0, repvgg-a1 or repvgg-a2')
    parser.add_argument('--force', action='store_true',
                        help='overwrite DST if it exists (SRC is never overwritten)')
    return parser.parse_args(argv)


def check_paths(src: str, dst: str, force: bool) -> None:
    """Refuse before any work: SRC must be a file, DST neither SRC nor, unless
    ``force``, an existing file."""
    if not os.path.isfile(src):
        raise ConversionError(f'SRC {src!r} is not a file')
    if os.path.realpath(src) == os.path.realpath(dst) or (
            os.path.exists(dst) and os.path.samefile(src, dst)):
        raise ConversionError(f'DST {dst!r} is the same file as SRC; refusing to overwrite '
                              'the published checkpoint')
    if os.path.isdir(dst):
        raise ConversionError(f'DST {dst!r} is a directory; give a file name')
    if os.path.lexists(dst) and not force:
        raise ConversionError(f'DST {dst!r} exists; pass --force to overwrite it')


def convert(args: argparse.Namespace) -> None:
    """Check, load, convert and save, printing each stage and a summary.

    Raises:
        ConversionError: Anything the user has to fix; DST is then untouched.
    """
    check_paths(args.src, args.dst, args.force)
    # Imported after the path checks, which should answer at once: importing
    # mmorepa takes seconds (it pulls in mmseg and mmpretrain). The import
    # also lets the weights-only loader read OpenMMLab checkpoint metadata.
    from mmorepa import __version__
    from mmorepa.engine import CheckpointError, read_checkpoint, save_atomic
    from mmorepa.engine.converters import convert_published_state_dict, published_arch
    from mmorepa.engine.converters.published import unwrap_published_state_dict
    try:
        published_arch(args.arch)
    except ValueError as error:
        raise ConversionError(f'--arch: {error}') from error

    print(f'[1/3] loading {args.src}', flush=True)
    try:
        published = read_checkpoint(args.src)
    except CheckpointError as error:
        raise ConversionError(f'SRC: {error}') from error
    print(f'[2/3] converting for arch {args.arch}', flush=True)
    try:
        num_published = len(unwrap_published_state_dict(published))
        state_dict = convert_published_state_dict(published, args.arch)
    except (TypeError, ValueError) as error:
        raise ConversionError(str(error)) from error
    print(f'[3/3] saving {args.dst}', flush=True)
    meta = dict(
        arch=args.arch,
        source=os.path.basename(args.src),
        converter='tools/convert_published.py',
        mmorepa_version=__version__,
        config=PUBLISHED_CONFIG.format(arch=args.arch))
    try:
        save_atomic(dict(state_dict=state_dict, meta=meta), args.dst, source=args.src)
    except (OSError, CheckpointError) as error:
        raise ConversionError(f'cannot write DST {args.dst!r}: {error}') from error
    print(f'done: read {num_published} published tensors, wrote {len(state_dict)} '
          f'converted tensors to {args.dst}\nuse it with {meta["config"]}', flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the tool; returns the exit status (0 done, 1 refused or failed)."""
    args = parse_args(argv)
    try:
        convert(args)
    except ConversionError as error:
        print(f'error: {error}', file=sys.stderr)
        print('DST was not written', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
