"""Tree-LSTM and DAG examples for vmapper: ListOps / SST data, per-tree model, trainer.

* :mod:`.listops`: seeded ListOps-style data as binary PTB trees;
* :mod:`.model`: the binary Tree-LSTM of Tai et al. (2015), written per tree;
* :mod:`.reference`: the same model level-batched by hand (forward + backward), the oracle;
* :mod:`.train`: the command-line trainer (``python -m examples.trees.train``);
* :mod:`.graph_model`: a DAG-RNN over networkx DAGs.
"""
