"""The Delta side: data files, the commit, the lock, the side tables and the kept keys.

`datafiles`, `properties` and `dcm_spark.records` need only pyarrow (the workers use them);
the rest talk to Spark, Delta's JVM or delta-rs on the driver.
"""
