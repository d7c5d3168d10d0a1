"""The arguments the commands that train on the demo data share."""
import argparse

from mmengine.config import DictAction

from ..engine.cli import positive_int


def add_demo_training_arguments(parser: argparse.ArgumentParser, out: str,
                                when: str = '') -> None:
    """``--epochs``, ``--seeds``, ``--data-root``, ``--cfg-options`` and
    ``--out``: what the commands that train on the demo data share.

    Args:
        parser (argparse.ArgumentParser): The command's parser.
        out (str): Default output folder.
        when (str): Prefix of the help texts, e.g. ``'with --compare-scalings: '``.
    """
    parser.add_argument('--epochs', type=positive_int, default=3,
                        help=f'{when}training epochs (default: 3)')
    parser.add_argument('--seeds', type=positive_int, default=1,
                        help=f'{when}train every run with seeds 0 .. N-1 and report each '
                        'number as mean, standard deviation, min and max over them; the JSON '
                        'keeps every run (default: 1)')
    parser.add_argument('--data-root', help=f'{when}folder of the demo digits (default: '
                        'OUT/digits; written when missing)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in OpenMMLab tools')
    parser.add_argument('--out', default=out,
                        help='folder for the JSON and PNG files and the training runs')
