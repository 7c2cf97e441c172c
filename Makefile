# dcm-spark: every command a user or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JARS_STAMP := .ivy2/.resolved
SPARK_SUBMIT = PATH=$(abspath $(VENV))/bin:$$PATH \
	PYSPARK_PYTHON=$(abspath $(PY)) PYSPARK_DRIVER_PYTHON=$(abspath $(PY)) \
	spark-submit --properties-file conf/spark-defaults.conf --master '$(MASTER)'
MASTER ?= local[*]
INPUT ?=
TABLE ?= warehouse/dicom
INGEST_ARGS ?=
SQL ?= SELECT Modality, count(*) AS instances FROM dicom GROUP BY Modality ORDER BY 2 DESC
FORMAT ?= text
DIALECT ?= spark
SQL_FILE ?=
OUT ?=
PYTEST_ARGS ?=
ZORDER ?=
RETAIN_HOURS ?= 168
FORCE ?=
AS_OF ?=
PORT ?= 7860
HOST ?= 127.0.0.1
APP_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup test lint typecheck pytest demo ingest sql idc-index schema app space optimize vacuum bench bench-sources bench-tools bench-app bench-idc bench-log bench-wide package clean
PACKAGE := dist/dcm_spark.zip dist/dcm_spark_env.tar.gz
# On a cluster the executors get the library (--py-files) and a packed Python
# environment (--archives, unpacked as ./environment next to each executor).
CLUSTER_ARGS = $(if $(filter local%,$(MASTER)),,--py-files dist/dcm_spark.zip \
	--archives dist/dcm_spark_env.tar.gz\#environment --conf spark.pyspark.python=./environment/bin/python \
	--conf spark.pyspark.driver.python=$(abspath $(PY)))
BENCH_FILES ?= 30000

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
		"dcm-spark needs Python 3.11 or newer; set PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# the Delta jars into .ivy2/jars, and jvm/ compiled into .cache/jvm (dcm_spark.session)
$(JARS_STAMP): $(STAMP) dcm_spark/session.py $(wildcard jvm/dcm_spark/*.java)
	$(PY) -m dcm_spark.session
	touch $(JARS_STAMP)

# The driver JVM's class archive (conf/spark-defaults.conf, -XX:SharedArchiveFile): the
# classes a training ingest of the sample data loads, dumped when its JVM exits, under a
# temporary name until it is whole. If it cannot be built, set-up goes on with a warning
# (the JVM then starts without class sharing); `rm -rf .cache && make setup` tries again.
CLASS_ARCHIVE := .cache/spark-driver.jsa
CLASS_ARCHIVE_STAMP := .cache/.class-archive
DRIVER_JAVA_OPTIONS := $(shell sed -n 's/^spark.driver.extraJavaOptions[[:space:]]*//p' conf/spark-defaults.conf)
SAMPLE_DATA = $$($(PY) -c 'import pydicom.data, os; print(os.path.dirname(pydicom.data.get_testdata_file("CT_small.dcm")))')

$(CLASS_ARCHIVE_STAMP): $(JARS_STAMP) conf/spark-defaults.conf
	mkdir -p $(@D) && rm -f $(CLASS_ARCHIVE) $(CLASS_ARCHIVE).tmp
	scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	$(SPARK_SUBMIT) --driver-java-options \
		"$(filter-out -XX:SharedArchiveFile=%,$(DRIVER_JAVA_OPTIONS)) -XX:ArchiveClassesAtExit=$(CLASS_ARCHIVE).tmp" \
		jobs/ingest.py --input $(SAMPLE_DATA) --table "$$scratch/dicom" >"$$scratch/log" 2>&1 && \
		mv $(CLASS_ARCHIVE).tmp $(CLASS_ARCHIVE) || \
		{ tail -20 "$$scratch/log"; rm -f $(CLASS_ARCHIVE).tmp; \
		  echo "warning: no JVM class archive; Spark starts slower"; }
	touch $@

setup: $(STAMP) $(JARS_STAMP) $(CLASS_ARCHIVE_STAMP) ## create .venv, install the project, resolve the Delta jars, compile jvm/, build the JVM class archive once
	@$(PY) -c 'import dcm_spark.session as s; s.check_java()' || \
		{ echo "Java 17 or newer is required"; exit 2; }

lint: $(STAMP) ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP) ## mypy on dcm_spark/
	$(VENV)/bin/mypy

pytest: setup ## pytest only (PYTEST_ARGS="-m 'not slow'" to narrow)
	$(PY) -m pytest $(PYTEST_ARGS)

test: setup lint typecheck pytest ## set up, then lint, type-check and run every test

ingest: setup $(if $(filter local%,$(MASTER)),,package) ## ingest INPUT=dir-or-uri into TABLE=path (MASTER=spark://host:port, INGEST_ARGS="--deidentify basic")
	@test -n "$(INPUT)" || { echo "usage: make ingest INPUT=dir-or-uri [TABLE=path]"; exit 2; }
	$(SPARK_SUBMIT) $(CLUSTER_ARGS) jobs/ingest.py $(foreach i,$(INPUT),--input $(i)) --table $(TABLE) $(INGEST_ARGS)

sql: setup ## run SQL="..." (or SQL_FILE=path) on TABLE's views; DIALECT=spark|bigquery; FORMAT=text|csv|json; AS_OF=version|time
	$(SPARK_SUBMIT) jobs/query.py --table $(TABLE) --format $(FORMAT) --dialect $(DIALECT) $(if $(AS_OF),--as-of '$(AS_OF)',) \
		$(if $(SQL_FILE),--sql-file '$(SQL_FILE)',"$(SQL)")

idc-index: setup ## write idc-index tables of TABLE into OUT=dir (<name>.parquet, as IDC's)
	@test -n "$(OUT)" || { echo "usage: make idc-index TABLE=path OUT=dir"; exit 2; }
	$(SPARK_SUBMIT) jobs/idc_index.py --table $(TABLE) --out '$(OUT)'

schema: setup ## print TABLE's schema as BigQuery shows it (FORMAT=bigquery-json for JSON)
	$(SPARK_SUBMIT) jobs/schema.py --table $(TABLE) $(if $(filter bigquery-json,$(FORMAT)),--format bigquery-json,)

app: setup ## serve the web app on TABLE at http://HOST:PORT (127.0.0.1:7860; APP_ARGS="--allow-root DIR")
	$(SPARK_SUBMIT) --driver-java-options "$$($(PY) -c 'import dcm_spark.session as s; print(s.server_java_options())')" \
		jobs/app.py --table $(TABLE) --port $(PORT) --host $(HOST) $(APP_ARGS)

space: $(STAMP) ## write dist/space/: a Hugging Face Docker Space serving the app on the demo table
	$(PY) -m dcm_spark.app.space dist/space

demo: setup ## set up, ingest pydicom's test files into ./warehouse/dicom, show schema and a query
	$(MAKE) --no-print-directory ingest INPUT="$$($(PY) -c 'import pydicom.data, os; print(os.path.dirname(pydicom.data.get_testdata_file("CT_small.dcm")))')" TABLE=warehouse/dicom
	$(SPARK_SUBMIT) jobs/schema.py --table warehouse/dicom | head -40
	$(SPARK_SUBMIT) jobs/query.py --table warehouse/dicom \
		"SELECT Modality, count(*) AS instances, count(DISTINCT SeriesInstanceUID) AS series FROM dicom GROUP BY Modality ORDER BY instances DESC"

optimize: setup ## compact TABLE's small files and its side tables' (ZORDER=1: by study and series)
	$(SPARK_SUBMIT) jobs/maintain.py optimize --table $(TABLE) $(if $(ZORDER),--zorder,)

vacuum: setup ## delete files TABLE no longer needs (RETAIN_HOURS=168; below needs FORCE=1)
	$(SPARK_SUBMIT) jobs/maintain.py vacuum --table $(TABLE) --retain-hours $(RETAIN_HOURS) \
		$(if $(FORCE),--force-short-retention,)

bench: setup ## measure ingest against baselines on BENCH_FILES generated files (BENCH_ARGS="--corpus wide")
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m bench.run --files $(BENCH_FILES) $(BENCH_ARGS)

bench-log: setup ## the Delta log after RUNS=500 runs of 20 files: no-op, checkpoints, files read; vs one run, optimized
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m bench.log_health --runs $(or $(RUNS),500)

GOFAKES3 := .cache/go/bin/gofakes3
$(GOFAKES3):
	GOBIN=$(abspath $(@D)) go install github.com/johannesboyne/gofakes3/cmd/gofakes3@v1.2.0

bench-tools: $(GOFAKES3) ## build gofakes3 (Go module proxy) into .cache/go/bin: bench-sources' S3 server

bench-wide: setup ## the wide corpus (thousands of fields) against the benchmark's, at BENCH_FILES
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m bench.wide --files $(BENCH_FILES)

bench-app: setup ## time the app in Chromium on a table of BENCH_FILES generated files
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m bench.app --files $(BENCH_FILES)

bench-idc: setup ## cost of the dicom_all view: registering it, a query on it (BENCH_FILES)
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m bench.idc --files $(BENCH_FILES)

bench-sources: setup ## the same generated files from disk, S3 (gofakes3 after make bench-tools, and moto) and Orthanc
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m bench.sources --files $(if $(filter 30000,$(BENCH_FILES)),2000,$(BENCH_FILES))

package: $(PACKAGE) ## build what spark-submit ships to a cluster (dist/, not committed)

dist/dcm_spark.zip: $(STAMP) $(wildcard dcm_spark/*.py dcm_spark/*/*.py)
	mkdir -p dist
	rm -f $@ && $(PY) -c 'import zipfile, pathlib; z = zipfile.ZipFile("$@", "w", zipfile.ZIP_DEFLATED); [z.write(p) for p in sorted(pathlib.Path("dcm_spark").rglob("*.py"))]'

dist/dcm_spark_env.tar.gz: $(STAMP) pyproject.toml
	mkdir -p dist build
	rm -rf build/pack-venv
	$(PYTHON) -m venv build/pack-venv
	build/pack-venv/bin/pip install --quiet venv-pack $$($(PY) -m pip freeze | grep -iE '^(pydicom|pyarrow|numpy|pandas|python-dateutil|pytz|tzdata|six)==')
	build/pack-venv/bin/venv-pack --quiet --force -p build/pack-venv -o $@

clean: ## remove the venv, caches and local tables (keeps nothing you made by hand)
	rm -rf $(VENV) .ivy2 .cache build dist warehouse spark-warehouse metastore_db derby.log .pytest_cache .mypy_cache .ruff_cache .hypothesis
