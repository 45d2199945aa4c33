"""The 15-minute room utilization of `roomflow bench --files`, in Spark Structured
Streaming: the files replayed one per micro-batch, event time with a 5-minute
watermark, average people over capacity per room and window.

Prints one line: readings, seconds, readings/s, final windows.
"""

import argparse
import os
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dir", help="folder written by `roomflow bench --files`")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()

    spark = (
        SparkSession.builder.master(f"local[{args.cores}]")
        .appName("roomflow-peer")
        .config("spark.sql.shuffle.partitions", str(args.cores * 2))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    rooms = spark.read.schema("room_id STRING, office_id STRING, capacity INT").csv(
        os.path.join(args.dir, "rooms.csv")
    )
    readings = (
        spark.readStream.schema(
            "office_id STRING, room_id STRING, sensor_id STRING, ts LONG, people_count INT"
        )
        .option("maxFilesPerTrigger", 1)
        .csv(os.path.join(args.dir, "readings"))
    )
    windows = (
        readings.withColumn("event_time", F.timestamp_millis("ts"))
        .withWatermark("event_time", "5 minutes")
        .groupBy(F.window("event_time", "15 minutes"), "room_id")
        .agg(F.count("*").alias("samples"), F.avg("people_count").alias("avg_people"))
        .join(rooms.select("room_id", "capacity"), "room_id")
        .withColumn("utilization", F.col("avg_people") / F.col("capacity"))
    )
    counted = {"rows": 0}

    def sink(batch, _):
        counted["rows"] += batch.count()

    total = sum(
        sum(1 for _ in open(os.path.join(args.dir, "readings", f)))
        for f in os.listdir(os.path.join(args.dir, "readings"))
    )
    started = time.monotonic()
    query = (
        windows.writeStream.outputMode("append")
        .foreachBatch(sink)
        .option("checkpointLocation", os.path.join(args.dir, "spark-checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    elapsed = time.monotonic() - started
    print(
        f"spark     {total} readings in {elapsed:.2f} s = {total / elapsed:.0f} readings/s: "
        f"Structured Streaming, local[{args.cores}], one file per micro-batch, "
        f"15m room utilization; {counted['rows']} final windows"
    )
    spark.stop()


if __name__ == "__main__":
    main()
