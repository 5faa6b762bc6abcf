"""Downstream evaluation of cross-lingual word embeddings (Glavaš et al., 2019): CLDC, XNLI and CLIR.

Zero-shot transfer: a model is trained on the source language with the (mapped) source vectors, frozen, and tested
on the target language with the target vectors. ``data`` loads the tasks' files (xling's layouts and the released
corpora's formats), ``models`` holds the classifiers (CNN, mean-vector baseline, ESIM), ``clir`` the retrieval models
(BWE-Agg, TbT-QT) and MAP, ``evaluate`` runs one task on one pair of spaces, ``simulate`` writes planted data.

This package file imports nothing, so that simulating data does not load torch.
"""
