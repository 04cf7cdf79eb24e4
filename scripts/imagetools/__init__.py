"""The build tooling of grocery-ml-containers: `python -m imagetools COMMAND` (see __main__.py).

Make runs it with scripts/ on PYTHONPATH; docs/architecture.md shows which Make target runs
which command and module.
"""
