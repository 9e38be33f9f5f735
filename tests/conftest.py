import pathlib

import fastbp

SOURCE_TREE = pathlib.Path(__file__).resolve().parent.parent / "fastbp"


def pytest_report_header(config):
    where = pathlib.Path(fastbp.__file__).resolve().parent
    kind = "source tree (built in place)" if where == SOURCE_TREE else "installed package"
    return f"fastbp {fastbp.__version__} from {where} ({kind})"


def pytest_terminal_summary(terminalreporter):
    import sys

    module = sys.modules.get("test_reference_torch")
    if module is not None and any(module.DEVIATIONS.values()):
        worst = ", ".join(f"{k} {v:.2e}" for k, v in module.DEVIATIONS.items())
        terminalreporter.write_line(f"largest relative deviation from PyTorch: {worst}")
