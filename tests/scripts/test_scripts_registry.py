"""What a failed push says: each engine's wording, read as what it means (one line)."""

from __future__ import annotations

import pytest

from imagetools import registry

REF = "reg.example:5000/team/grocery-flask:uv"

# What Docker 20.10 and Podman 4.3 printed last, against a real registry (the container tests
# produce each case; these are their words).
SAID = [
    ("docker", 'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
     "cannot reach the registry reg.example:5000"),
    ("podman", "Error: trying to reuse blob sha256:c2 at destination: pinging container registry "
     "127.0.0.1:1: Get \"http://127.0.0.1:1/v2/\": dial tcp: lookup x: no such host",
     "cannot reach the registry reg.example:5000"),
    ("docker", "no basic auth credentials",
     "the registry reg.example:5000 refused the credentials: log in with `docker login "
     "reg.example:5000`, with an account that may push to reg.example:5000/team/grocery-flask"),
    ("podman", "Error: checking whether a blob sha256:c2 exists in 127.0.0.1:5077/t/flask: "
     "unauthorized: authentication required",
     "the registry reg.example:5000 refused the credentials: log in with `podman login "
     "reg.example:5000`"),
    ("docker", "received unexpected HTTP status: 500 Internal Server Error",
     "the registry reg.example:5000 failed to store it (a server error"),
]  # fmt: skip


@pytest.mark.parametrize(("engine", "said", "meaning"), SAID)
def test_a_failed_push_says_what_it_means_in_one_line(engine: str, said: str,
                                                      meaning: str) -> None:  # fmt: skip
    line = registry.push_failure(f"`{engine} push {REF}` failed: {said}", engine, REF)
    assert line.startswith(f"pushing {REF}: {meaning}"), line
    assert line.endswith(f"nothing recorded for it (`{engine} push {REF}` failed: {said})")
    assert "\n" not in line


def test_an_unknown_failure_still_names_the_image_and_the_engine_s_words() -> None:
    line = registry.push_failure("`docker push x` failed: something new", "docker", REF)
    assert line == f"pushing {REF} failed; nothing recorded for it (`docker push x` failed: " \
                   "something new)"  # fmt: skip
