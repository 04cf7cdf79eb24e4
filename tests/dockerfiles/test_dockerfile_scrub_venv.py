"""dockerfiles/buildtime/scrub_venv.py: drops uv's install-time records, keeps RECORD valid."""

from __future__ import annotations


def test_removes_uv_cache_json_and_its_record_line(runtime_module, tmp_path):
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    info = site / "click-8.5.1.dist-info"
    info.mkdir(parents=True)
    (info / "uv_cache.json").write_text('{"timestamp":{"secs_since_epoch":1}}')
    (info / "RECORD").write_text(
        "click/__init__.py,sha256=abc,10\n"
        "click-8.5.1.dist-info/uv_cache.json,sha256=def,40\n"
        "click-8.5.1.dist-info/RECORD,,\n"
    )
    other = site / "flask-3.1.3.dist-info"
    other.mkdir()
    (other / "RECORD").write_text("flask/__init__.py,sha256=x,1\n")
    scrub = runtime_module("scrub_venv")
    assert scrub.main(str(tmp_path / "venv")) == 0
    assert not (info / "uv_cache.json").exists()
    assert (info / "RECORD").read_text() == (
        "click/__init__.py,sha256=abc,10\nclick-8.5.1.dist-info/RECORD,,\n"
    )
    assert (other / "RECORD").read_text() == "flask/__init__.py,sha256=x,1\n"


def test_no_site_packages_is_an_error(runtime_module, tmp_path, capsys):
    scrub = runtime_module("scrub_venv")
    assert scrub.main(str(tmp_path)) == 1
    assert "no single site-packages" in capsys.readouterr().err
