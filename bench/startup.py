"""An empty Spark job: the start-up and shut-down cost every spark-submit pays."""

from pyspark.sql import SparkSession

from dcm_spark.session import configure

if __name__ == "__main__":
    spark = configure(SparkSession.builder.appName("dcm-spark start-up")).getOrCreate()
    spark.range(1).count()
    spark.stop()
