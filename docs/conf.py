"""Sphinx configuration of the s4learn documentation.

Build the site from the repository root (the ``docs`` extra installs the tools)::

    pip install -e ".[docs]"
    python -m sphinx -W -b html docs docs/_build/html

The gallery (sphinx-gallery) runs every script in ``examples/`` during the build and
keeps its printed output and figures. With the environment variable
``S4LEARN_GALLERY_QUICK=1`` the examples train fewer epochs: the build then takes a
fraction of the time and the figures show less trained models. Continuous integration
builds with it set.

The API reference (``api/index.rst``) is written at every build from ``API_SECTIONS``:
each module's public names (its ``__all__``, else the classes and functions defined in
it), so that a new public name is documented without editing a page. Intersphinx is off:
the build needs no network.
"""

import importlib
import inspect
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # document the s4learn next to this folder

import s4learn  # noqa: E402

project = "s4learn"
author = "the s4learn developers"
copyright = "the s4learn developers"
release = s4learn.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5", "auto_examples/*.json"]

# -- API reference ---------------------------------------------------------------
API_SECTIONS = [
    ("s4learn", "Estimators"),
    ("s4learn.preprocessing", "Time-ordered tables"),
    ("s4learn.datasets", "Data sets"),
    ("s4learn.ondisk", "Data larger than memory"),
    ("s4learn.peft", "Fine-tuning"),
    ("s4learn.nn", "The S4D network in PyTorch"),
    ("s4learn.plotting", "Plotting"),
]
autosummary_generate = True
autodoc_default_options = {"members": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False  # the class template lists the methods
numpydoc_class_members_toctree = False


def public_names(module):
    """Classes first, then functions, of the module's public API."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name, value in vars(module).items()
                 if not name.startswith("_")
                 and (inspect.isclass(value) or inspect.isfunction(value))
                 and value.__module__ == module.__name__]
    callables = [name for name in names if callable(getattr(module, name))]
    return sorted(callables, key=lambda name: (not inspect.isclass(getattr(module, name)),
                                               name))


def write_api_index(path):
    lines = ["API reference", "=============", "",
             "Every public class and function, from its docstring. :doc:`../api` gives "
             "an overview on one page.", "",
             ".. toctree::", "   :hidden:", "", "   ../api", ""]
    for module_name, title in API_SECTIONS:
        module = importlib.import_module(module_name)
        heading = f":mod:`{module_name}`: {title}"
        lines += [heading, "-" * len(heading), "",
                  f".. automodule:: {module_name}", "   :no-members:", "",
                  f".. currentmodule:: {module_name}", "",
                  ".. autosummary::", "   :toctree: generated/", "   :nosignatures:", ""]
        lines += [f"   {name}" for name in public_names(module)] + [""]
    text = "\n".join(lines)
    path.parent.mkdir(exist_ok=True)
    if not path.is_file() or path.read_text() != text:  # unchanged: no rebuild
        path.write_text(text)


write_api_index(DOCS / "api" / "index.rst")

# scikit-learn's metadata-routing and set_output plumbing, on every estimator
SKLEARN_PLUMBING = re.compile(r"set_\w+_request|get_metadata_routing|set_output")


def skip_sklearn_plumbing(app, what, name, obj, skip, options):
    return True if SKLEARN_PLUMBING.fullmatch(name) else None


# inherited scikit-learn docstrings (score, get_params) link into scikit-learn's user
# guide, which is not part of this site: keep the link text only
SPHINX_CROSS_REFERENCE = re.compile(r":(?:ref|term):`([^`<]*?)\s*(?:<[^>]*>)?`")


def unlink_sklearn_references(app, what, name, obj, options, lines):
    if getattr(obj, "__module__", "").startswith("sklearn."):
        lines[:] = [SPHINX_CROSS_REFERENCE.sub(r"\1", line) for line in lines]


def setup(app):
    app.connect("autodoc-skip-member", skip_sklearn_plumbing)
    app.connect("autodoc-process-docstring", unlink_sklearn_references)

# -- Markdown pages --------------------------------------------------------------
myst_heading_anchors = 3  # links such as finetuning.md#real-data-digits-0-4-to-digits-5-9

# -- Gallery ---------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",  # run every example, not only the plot_* ones
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "reference_url": {"s4learn": None},
}

# -- HTML ------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"s4learn {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": False,
}
html_static_path = []
