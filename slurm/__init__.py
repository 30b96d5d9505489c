"""Running the catalogue on SLURM: what a job asks for (``requests``), the checks against the cluster
(``checks``), submission through submitit (``submit``), queue state (``queue``), ``--status`` and ``--cancel``
(``status``); cluster profiles as data (``profiles/*.toml``) and the scripts that start a real local cluster
for tests (``testcluster/``)."""
