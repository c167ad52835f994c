"""The core never imports the UI: importing monitor/ and collectors/ must not load streamlit or plotly."""
import subprocess
import sys


def test_core_does_not_import_ui():
    code = (
        "import importlib, pkgutil, sys\n"
        "import monitor, collectors\n"
        "for pkg in (monitor, collectors):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('streamlit', 'plotly'))\n"
        "print(','.join(bad))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"core imported UI modules: {r.stdout.strip()}"
