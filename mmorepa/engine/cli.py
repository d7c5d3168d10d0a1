"""What the tools share: their exit convention and their checking arguments."""
import argparse
import functools
import sys
from typing import Callable, List, Optional

from mmengine.config import Config, DictAction

from .errors import ReparamError


def tool_main(run: Callable[[Optional[List[str]]], Optional[int]]) -> Callable[..., int]:
    """Make a tool's ``run(argv)`` its ``main(argv)``: an exit status, errors on one line.

    A :class:`ReparamError` becomes ``error: <message>`` on stderr and status
    1; ``run`` returning ``None`` means success (0). Any other exception is a
    bug and keeps its traceback.
    """

    @functools.wraps(run)
    def main(argv: Optional[List[str]] = None) -> int:
        try:
            status = run(argv)
        except ReparamError as error:
            print(f'error: {error}', file=sys.stderr)
            return 1
        return 0 if status is None else status

    return main


def positive_int(text: str) -> int:
    """An argparse type: a positive int, else an error naming the value."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be a positive int, got {text}')
    return value


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """``--shape H W``, ``--tolerance`` and ``--cfg-options``: what the tools that
    check an export against the trained model share."""
    parser.add_argument('--shape', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'),
                        help='height and width of the random input the check runs on '
                        '(default: 224 224)')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest relative difference accepted (default: 1e-4)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in OpenMMLab tools')


def parse_checked(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, refusing a non-positive ``--shape`` or ``--tolerance`` by name."""
    args = parser.parse_args(argv)
    if min(args.shape) <= 0:
        parser.error(f'--shape must be two positive ints H W, got {args.shape[0]} '
                     f'{args.shape[1]}')
    if args.tolerance <= 0:
        parser.error(f'--tolerance must be positive, got {args.tolerance}')
    return args


def load_config(args: argparse.Namespace) -> Config:
    """``args.config`` with ``args.cfg_options`` merged in."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg
