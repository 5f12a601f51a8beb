"""Read path: facts about the host and its containers.

Modules here only read. They must never import ``tailops.changes`` or
``ansible_runner`` (an import test enforces it): looking is direct and fast,
changing goes through the change engine.
"""
