"""Run a study as a Hydra multirun: ``python sweep.py -m`` (the dropout study by default).

Every job is one ``train.py`` run (the same ``train`` function, same configs); the sweep's
parameters live in conf/sweep.yaml under ``hydra.sweeper.params`` and any command-line override
(``data.preset=tiny trainer.max_epochs=1 logger=csv``) applies to every job.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from train import check_command_line, run


@hydra.main(version_base="1.3", config_path="conf", config_name="sweep")
def main(cfg: DictConfig) -> dict:
    return run(cfg)


if __name__ == "__main__":
    check_command_line()
    main()
