#!/usr/bin/env bash
# Wheels for an offline x86-64 GPU machine with Python 3.12 whose image has torch, transformers, peft, numpy, pandas,
# pyarrow, scipy, scikit-learn, pyyaml, typer, rich, tqdm, xxhash, fsspec, huggingface-hub and sacrebleu but not the
# rest of what benchmarks/gpu.sh imports: lm-eval, datasets, pydantic, duckdb and their own needs, at the versions
# xling is tested with. Run here (with PyPI), carry DIR, and there: XLING_WHEELS=DIR bash benchmarks/gpu.sh
#
#   bash benchmarks/gpu_wheels.sh DIR
set -euo pipefail
dir="${1:?usage: bash benchmarks/gpu_wheels.sh DIR}"
py="${PYTHON:-python3}"
mkdir -p "$dir"
binary=(
    lm-eval==0.4.13 datasets==5.2.0 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19 more-itertools==11.2.1
    pytablewriter==1.2.1 dataproperty==1.1.1 mbstrdecoder==1.1.5 pathvalidate==3.3.1 tabledata==1.3.5
    tcolorpy==0.1.7 typepy==1.3.5 chardet==6.0.0.post1 nltk==3.10.4
    pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 duckdb==2.0.1
)
"$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$dir" "${binary[@]}"
# published as source only: pure Python, built here into platform-independent wheels
"$py" -m pip wheel -q --disable-pip-version-check --no-deps -w "$dir" sqlitedict==2.1.0 word2number==1.1 \
    rouge-score==0.1.2
du -sh "$dir"
