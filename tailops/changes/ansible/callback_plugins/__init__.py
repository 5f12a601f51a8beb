"""Ansible plugins tailops loads into its own ansible-playbook runs.

This directory is put on ``ANSIBLE_CALLBACK_PLUGINS`` by
:mod:`tailops.changes.ansible.environment`; the modules here run inside the
``ansible-playbook`` process, never inside the tailops server, and must never
import tailops (the server's code and config are not theirs to see).
"""
