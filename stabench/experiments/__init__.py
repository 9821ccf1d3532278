"""One module per matched experiment; each exposes ``run(...) -> pandas.DataFrame``."""

#: How a Keras Loss class is asked for the batch's mean and sum (its ``reduction=``): the mean is
#: Keras' default, ``"sum_over_batch_size"`` (``ops.sum`` then ``ops.divide_no_nan`` by the count,
#: ``keras/src/losses/loss.py`` ``reduce_values``, Keras 3.15). The experiments' Keras methods read
#: it in their ``reduced`` calls (:attr:`stabench.backends.Method.reduced`).
KERAS_REDUCTION = {"mean": "sum_over_batch_size", "sum": "sum"}
