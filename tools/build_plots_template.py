"""Build ``.dvc/plots/offline.html``: DVC's plots page with vega, vega-lite and vega-embed inlined, so that
``dvc plots show`` / ``dvc plots diff`` work with no network (DVC's own page loads them from a CDN).

The three libraries come from their npm registry tarballs, pinned by version and checked against the registry's
sha512 integrity before use; the versions are the ones DVC's renderer (dvc-render) loads, so every DVC template
renders as it would online. All three are BSD-3-Clause; their licence texts are copied into the page. The page has
no ``{scripts}`` placeholder, so DVC adds no CDN script; ``{plot_divs}`` is where DVC puts the plots.

Run it (network: the npm registry only) when changing a version, then commit the page:

    python tools/build_plots_template.py
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
OUT = PROJECT / ".dvc" / "plots" / "offline.html"
PACKAGES = (  # name, version, bundle inside the tarball, sha512 integrity from the registry
    ("vega", "5.20.2", "package/build/vega.min.js",
     "qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw=="),
    ("vega-lite", "5.2.0", "package/build/vega-lite.min.js",
     "Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRnID81T8UrY7hpDrIr6wa2JADOT2dhGNErw=="),
    ("vega-embed", "6.18.2", "package/build/vega-embed.min.js",
     "wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg=="),
)  # fmt: skip
REGISTRY = "https://registry.npmjs.org"


def fetch(name: str, version: str, integrity: str) -> tarfile.TarFile:
    """The package's tarball, refused unless its sha512 matches the pinned integrity."""
    url = f"{REGISTRY}/{name}/-/{name}-{version}.tgz"
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - a fixed https registry URL
        blob = response.read()
    digest = base64.b64encode(hashlib.sha512(blob).digest()).decode()
    if digest != integrity:
        raise SystemExit(f"{url}: sha512 {digest} is not the pinned {integrity}")
    return tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz")


def page() -> str:
    """The HTML template: inlined bundles, licences, and DVC's ``{plot_divs}`` placeholder."""
    scripts, licences = [], []
    for name, version, bundle, integrity in PACKAGES:
        tar = fetch(name, version, integrity)
        code = tar.extractfile(bundle).read().decode()
        licence = tar.extractfile("package/LICENSE").read().decode()
        for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}"):
            assert placeholder not in code, f"{name} contains DVC's placeholder {placeholder}"
        code = code.replace("</script", "<\\/script")  # the bundle inside a <script> element
        scripts.append(f"<!-- {name} {version} (npm) --><script>{code}</script>")
        licences.append(f"{name} {version}, {REGISTRY}/{name}/-/{name}-{version}.tgz:\n{licence.replace('--', '- -')}")
    return "\n".join([
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        '<meta charset="utf-8">',
        "{refresh_tag}",
        "<title>DVC plots (offline)</title>",
        "<!-- Built by tools/build_plots_template.py: vega, vega-lite and vega-embed inlined from their npm tarballs",
        "     (no script from the network). Licences:",
        *licences,
        "-->",
        *scripts,
        "<style>table { border-spacing: 15px; } body { font-family: sans-serif; }</style>",
        "</head>",
        "<body>",
        "{plot_divs}",
        "</body>",
        "</html>",
        "",
    ])  # fmt: skip


def main() -> None:
    """Write the page."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(page())
    print(f"{OUT.relative_to(PROJECT)}: {OUT.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
