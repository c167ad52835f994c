-- Which `metrics_log` partitions (families: refusal, values, disparity, ...) hold each metric, so a chart query can
-- read only those partitions: the values and disparity families hold millions of rows on real job output, while
-- a refusal chart needs a few thousand rows of the refusal family. Reads only the dictionary-encoded `metric`
-- column and the partition value of every file (tens of milliseconds on a 980k-turn home).
-- Parameters: none.
-- Columns: metric, family (NULL for rows written outside a family partition).
SELECT DISTINCT metric, family FROM metrics_log ORDER BY metric, family;
