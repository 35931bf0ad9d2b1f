"""The device bundle: engine recipe, plugin sources, golden frames and a verifier for the device (``drsedge bundle``)."""

from .check import check_bundle
from .make import BundleOptions, make_bundle
from .targets import JETPACKS, Target, resolve_target

__all__ = ["JETPACKS", "BundleOptions", "Target", "check_bundle", "make_bundle", "resolve_target"]
