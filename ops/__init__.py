"""Schema ops, its one owner: the migrations (`schema`), the locks (`locks`), run and stage records (`runs`), validation
records (`validation`), the ingest ledger (`ledger`), alerts (`alerts`) and the one renderer of a run (`render`).

No module outside this package writes SQL against ops.*; the others call the named functions here, which return
typed records.
"""
