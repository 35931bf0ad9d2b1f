"""Custom operators, one package per op (mirroring ``native/<op>/``)."""
