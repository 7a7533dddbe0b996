"""Train one model: ``python train.py model=cnn_multi`` (the same as ``amt train model=cnn_multi``).

The training code is :mod:`amt.train`, so that a pip-installed amt trains too; conf/train.yaml lists every option.
"""

from amt.train import command

if __name__ == "__main__":
    command()
