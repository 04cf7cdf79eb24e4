"""Which container tests a run keeps: those whose images are all in APPS x VARIANTS.

A container test needs the images of its `app` and `variant` parameters (or of a parameter
that is an (app, variant) pair), or those its `images` mark names:
`@pytest.mark.images(apps=[...], variants=[...])`, each falling back to the test's own
parameter. The Makefile passes APPS and VARIANTS as TEST_APPS and TEST_VARIANTS, so
`make test-containers APPS=flask VARIANTS=uv` (one image job of GitHub's CI matrix) keeps
the tests that need only images it built. A test that needs several images or names none
gets the `several_images` mark: it runs when APPS and VARIANTS are all of them (`make test`,
the default), or with `-m several_images`. Deselected tests are counted in pytest's summary
line and named in one line at the end.
"""

from __future__ import annotations

import pytest

from imagetools.config import VARIANTS
from shared_support import ALL_IMAGES, AppVariant, chosen_images


def needed_images(item: pytest.Item) -> frozenset[AppVariant] | None:
    """The images a container test needs, or None where it names none."""
    params = item.callspec.params if hasattr(item, "callspec") else {}
    pairs = [v for v in params.values() if isinstance(v, tuple) and v in ALL_IMAGES]
    if pairs:
        return frozenset(pairs)
    mark = item.get_closest_marker("images")
    named = mark.kwargs if mark else {}
    unknown = set(named.get("apps", [])) - {app for app, _ in ALL_IMAGES}
    unknown |= set(named.get("variants", [])) - set(VARIANTS)
    if unknown:
        raise pytest.UsageError(f"{item.nodeid}: images of {sorted(unknown)} are not in "
                                "dockerfiles/apps.toml x the variants")  # fmt: skip
    apps = named.get("apps") or ([params["app"]] if "app" in params else None)
    variants = named.get("variants") or ([params["variant"]] if "variant" in params else None)
    if not apps or not variants:
        return None
    return frozenset((app, variant) for app in apps for variant in variants)


@pytest.hookimpl(tryfirst=True)  # before `-m` and `-k` select: they see several_images
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = chosen_images()
    kept, dropped = [], []
    for item in items:
        if item.get_closest_marker("container") is None:
            kept.append(item)
            continue
        needed = needed_images(item)
        if needed is None or len(needed) > 1:
            item.add_marker("several_images")
        if chosen == ALL_IMAGES or (needed and needed <= chosen):
            kept.append(item)
        else:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    config.stash[_DROPPED] = len(dropped)


_DROPPED = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    dropped = config.stash.get(_DROPPED, 0)
    if dropped:
        terminalreporter.write_line(
            f"{dropped} container tests need images outside APPS x VARIANTS (or several "
            "images): deselected; run them with APPS and VARIANTS unset (make test)"
        )
