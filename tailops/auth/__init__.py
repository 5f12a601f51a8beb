"""Authentication and authorization: who is calling and what they may do.

Checks raise (:class:`~tailops.errors.AuthError`,
:class:`~tailops.errors.PermissionDenied`, :class:`~tailops.errors.RateLimited`)
and never return False; a missing declaration means deny.
"""
