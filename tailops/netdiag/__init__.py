"""Network diagnostics: ping, traceroute, TCP ports, DNS, TLS certificates, HTTP tests.

Every probe goes through :mod:`tailops.netdiag.policy` (parse, resolve once,
check every address, connect only to the checked address) and holds a slot of
:mod:`tailops.netdiag.context`. Nothing here runs a shell or an external
binary, and nothing here imports the change engine.
"""
