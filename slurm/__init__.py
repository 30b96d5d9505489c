"""Running the catalogue on SLURM: executor construction and submission (``executor``), ``--status`` and
``--cancel`` (``status``), cluster profiles as data (``clusters/*.toml``), and a real local cluster for tests
(``cluster/``)."""
