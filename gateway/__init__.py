"""dni-gateway: a self-hosted call-tracking edge gateway.

Websites fetch a tracking number per visitor (`web.swap`), carriers route calls here
(`web.voice`, `sip`), the functional core (`engine`, `scoring`) attributes each call to the most
likely visitor session, and `store` keeps it all in PostgreSQL.
"""

__version__ = "0.1.0"
