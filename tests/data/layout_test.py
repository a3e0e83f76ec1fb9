"""The rooms of `keras_cbm.data`: the clip samplers directly in
`keras_cbm/data/`, the modules that read video files in
`keras_cbm/data/video/`, and nothing of `keras_cbm.training` in either
(training builds on data, not the other way round)."""

import ast
import pathlib

DATA = pathlib.Path(__file__).resolve().parents[2] / "keras_cbm" / "data"


def imports(path):
    """The modules that `path` imports, anywhere in it (a function's lazy
    imports too), with the optional packages it loads through
    `keras_cbm.extras.require`."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "require"
        ):
            yield node.args[0].value


def test_the_imports_are_read():
    assert "av" in set(imports(DATA / "video" / "video_index.py"))
    assert "keras_cbm.data.video" in set(imports(DATA / "__init__.py"))


def test_no_clip_sampling_module_reads_video_files():
    modules = sorted(DATA.glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        for module in imports(path):
            assert module.split(".")[0] != "av", (path.name, module)
            if path.name != "__init__.py":  # It exports the datasets.
                assert not module.startswith("keras_cbm.data.video"), (
                    path.name,
                    module,
                )


def test_data_imports_nothing_from_training():
    modules = sorted(DATA.rglob("*.py"))
    assert any(path.parent.name == "video" for path in modules)
    for path in modules:
        for module in imports(path):
            assert not module.startswith("keras_cbm.training"), (
                path.relative_to(DATA),
                module,
            )
