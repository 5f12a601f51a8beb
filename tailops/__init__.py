"""tailops: an MCP server that watches Linux hosts and containers and changes them
only through vetted, versioned Ansible playbooks (plan → approve → apply)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tailops")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
