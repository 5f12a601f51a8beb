"""The vetted playbook catalog: manifests, parameter formats, scanning, pinning, the Catalog.

Why it exists: nothing changes a host except a catalog playbook (DESIGN.md, "The change
lifecycle", step 1). The rooms, each with one job:

- :mod:`.formats`: the named parameter formats (and protected services) a schema may use;
- :mod:`.parameters`: a caller's parameters checked against a manifest's schema;
- :mod:`.manifest`: the ``manifest.yml`` model, checked strictly;
- :mod:`.pinning`: content hashes, the lock file and drift against it;
- :mod:`.entry`: a loaded playbook (manifest, files, roles, pin);
- :mod:`.scanning`: where the catalog lives and each playbook held to what it really uses;
- :mod:`.facade`: :class:`Catalog`, what the rest of tailops holds.

This package exports only the names used outside it; everything else is imported from
the module that defines it. It must never import ``ansible_runner`` or ansible itself.
"""

from tailops.changes.catalog.entry import CatalogEntry
from tailops.changes.catalog.facade import Catalog
from tailops.changes.catalog.pinning import LOCK_FILE, installed_collections_root
from tailops.changes.catalog.scanning import catalog_dirs

__all__ = ["LOCK_FILE", "Catalog", "CatalogEntry", "catalog_dirs", "installed_collections_root"]
