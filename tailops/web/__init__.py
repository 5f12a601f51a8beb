"""The review web page: people read plans (per host, per task, with the diffs) and approve or deny them."""
