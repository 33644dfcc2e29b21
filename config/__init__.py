"""Configuration and the database handle: the one Settings object (`settings`) and the PostgreSQL it names
(`warehouse`).

Nothing else in fares reads os.environ for its own settings; everything takes a Settings.
"""
