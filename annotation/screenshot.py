"""Walk the annotator's view in a real (headless) browser: log in, open the labelling stream, take a screenshot, and
optionally submit the current task as shown (the suggested answer) — how `annotation/labelling_view.png` was made.

Not part of the test suite (it needs Chromium and Playwright, which the project's environment does not carry):

    apt-get install chromium && python -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    iadbench annotate push --dataset synthetic --sandbox --prefill padim   # regions pre-drawn by PaDiM
    /tmp/pw/bin/python annotation/screenshot.py --url http://127.0.0.1:8080 --project "iadbench synthetic (sandbox)" \
        --out annotation/labelling_view.png [--submit N]

Credentials come from LABEL_STUDIO_USERNAME / LABEL_STUDIO_PASSWORD / LABEL_STUDIO_API_KEY, as for the server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import urllib.request
from pathlib import Path


def project_id(url: str, title: str, token: str) -> int:
    """The id of the project titled ``title`` (the REST API, with the user's token)."""
    request = urllib.request.Request(f"{url}/api/projects?page_size=100", headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the local server
        payload = json.loads(response.read())
    projects = payload["results"] if isinstance(payload, dict) else payload
    return next(p["id"] for p in projects if p["title"] == title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--project", required=True, help="project title, e.g. 'iadbench magnetic_tile'")
    parser.add_argument("--out", type=Path, default=Path("annotation/labelling_view.png"))
    parser.add_argument("--submit", type=int, default=0, help="then submit this many tasks as shown")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    url = args.url.rstrip("/")
    pid = project_id(url, args.project, os.environ["LABEL_STUDIO_API_KEY"])
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(f"{url}/user/login/")
        page.fill("input[name=email]", os.environ["LABEL_STUDIO_USERNAME"])
        page.fill("input[name=password]", os.environ["LABEL_STUDIO_PASSWORD"])
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        page.goto(f"{url}/projects/{pid}/data?labeling=1")
        page.wait_for_selector("text=Defect category", timeout=60_000)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(3000)  # the images are drawn after the task data arrives
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        print(f"wrote {args.out}")
        for k in range(args.submit):
            page.click("button:has-text('Submit')")
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(2000)
            print(f"submitted task {k + 1}")
        browser.close()


if __name__ == "__main__":
    main()
