"""Imports go down the layers only: kernels <- layers <- backbones <- engine <- quantization
<- benchmark <- analysis <- tools.

``benchmark`` and ``analysis`` both sit on the engine; ``analysis`` ranks on top
because it imports ``quantization`` (the INT8 table) and may use the benchmark's
models (as ``tools/analysis/amp_gradients.py`` does).

``utils`` is below everything; the package's ``__init__`` and ``version`` sit on
top, and nothing in the package imports ``tools``. Read from the source (ast),
so an import inside a function counts too.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'mmorepa'
LAYERS = ['utils', 'kernels', 'layers', 'backbones', 'engine', 'quantization', 'benchmark',
          'analysis']


def layer_of(module: str) -> int:
    """Rank of a dotted module name inside mmorepa (the package root ranks top)."""
    parts = module.split('.')
    if len(parts) < 2 or parts[1] not in LAYERS:
        return len(LAYERS)
    return LAYERS.index(parts[1])


def imports(module: str, source: str, is_package: bool):
    """Absolute names of what ``module`` (with ``source``) imports."""
    package = module if is_package else module.rpartition('.')[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                yield '.'.join(base + ([node.module] if node.module else []))
            else:
                yield node.module or ''
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def violations(module: str, source: str, is_package: bool = False):
    found = []
    for name in imports(module, source, is_package):
        if name.split('.')[0] == 'tools':
            found.append(f'{module} imports {name}')
        elif name.split('.')[0] == 'mmorepa' and layer_of(name) > layer_of(module):
            found.append(f'{module} imports {name}')
    return found


def test_no_module_imports_from_a_higher_layer():
    files = sorted(PACKAGE.rglob('*.py'))
    assert len(files) > 30
    found = []
    for path in files:
        parts = path.relative_to(PACKAGE).with_suffix('').parts
        is_package = parts[-1] == '__init__'
        module = '.'.join(('mmorepa', ) + (parts[:-1] if is_package else parts))
        found += violations(module, path.read_text(), is_package)
    assert not found, '\n'.join(found)


def test_the_check_catches_upward_imports():
    assert violations('mmorepa.kernels.prior', 'from ..layers import BranchSum')
    assert violations('mmorepa.layers.base', 'import mmorepa.engine')
    assert violations('mmorepa.backbones', 'from ..engine import x', is_package=True)
    assert violations('mmorepa.engine.deploy', 'def f():\n    from tools import train')
    assert not violations('mmorepa.engine.deploy', 'from ..layers import reparameterize')
    assert not violations('mmorepa.layers.base', 'from ..utils import check_choice')
    assert violations('mmorepa.quantization.ptq', 'from ..analysis import figures')
    assert violations('mmorepa.benchmark.report', 'from ..analysis.json_output import x')
    assert not violations('mmorepa.analysis.int8_table', 'from ..quantization.ptq import x')
    assert violations('mmorepa.analysis.demo_data', 'from tools.demo import demo_config')


TOOLS = PACKAGE.parent / 'tools'


def test_tools_are_commands_on_the_package():
    """A tool imports ``mmorepa`` (and libraries), never another tool, and never
    edits ``sys.path``: it runs from any working directory."""
    found = []
    for path in sorted(TOOLS.rglob('*.py')):
        source = path.read_text()
        name = path.relative_to(TOOLS.parent)
        found += [f'{name} imports {module}'
                  for module in imports('tools.x', source, False)
                  if module.split('.')[0] == 'tools']
        if 'sys.path' in source:
            found.append(f'{name} edits sys.path')
    assert not found, '\n'.join(found)
