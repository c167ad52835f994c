"""SQL: ad hoc read-only queries through the SQL guard, with a schema browser, saved queries and parameters."""
import pandas as pd
import streamlit as st

from dashboards import data
from dashboards.ui import ctx, show_error
from monitor.errors import MonitorError

c = ctx()
st.title("SQL")
st.caption("Read-only SQL (DuckDB dialect) over every lake table, view and state table. Queries that write, "
           "attach, install, read files or change settings are refused.")
try:
    from monitor import sqlguard
except ImportError:
    st.error("The SQL guard (monitor.sqlguard) is not installed in this build, so ad hoc SQL is disabled.")
    st.stop()

cfg = c.home.config.dashboard
if st.session_state.get("sq_flash"):
    st.success(st.session_state.pop("sq_flash"))


def _schema_frame(sch) -> dict[str, pd.DataFrame]:
    """Normalise the guard's schema description (mapping or rows) to table -> DataFrame of columns."""
    if isinstance(sch, pd.DataFrame):
        tcol = "table" if "table" in sch else sch.columns[0]
        return {t: d.drop(columns=[tcol]) for t, d in sch.groupby(tcol)}
    if isinstance(sch, dict):
        out = {}
        for t, cols in sch.items():
            if isinstance(cols, dict):
                out[t] = pd.DataFrame({"column": list(cols), "type": [str(v) for v in cols.values()]})
            else:
                out[t] = pd.DataFrame([c if isinstance(c, dict) else {"column": c[0], "type": c[1]}
                                       if isinstance(c, (tuple, list)) else {"column": str(c)} for c in cols])
        return out
    rows = pd.DataFrame([r if isinstance(r, dict) else dict(zip(("table", "column", "type"), r)) for r in sch])
    return {t: d.drop(columns=["table"]) for t, d in rows.groupby("table")}


left, right = st.columns([1, 3])
with left:
    st.markdown("**Schema**")
    try:
        for table, cols in _schema_frame(data.schema(c.root, c.version)).items():
            with st.expander(table):
                st.dataframe(cols, hide_index=True)
    except MonitorError as e:
        show_error(e)
    saved = data.saved_queries(c.root)
    st.markdown("**Saved queries**")
    if saved.empty:
        st.caption("None yet: write a query and save it.")
    else:
        pick = st.selectbox("Load", ["—"] + saved["name"].tolist(), key="sq_pick")
        if pick != "—" and st.button("Load into editor", key="sq_load"):
            st.session_state["sq_sql"] = saved.loc[saved["name"] == pick, "sql"].iloc[0]
            st.rerun()

with right:
    if "sq_sql" not in st.session_state:
        st.session_state["sq_sql"] = "SELECT model, count(*) AS turns FROM turns GROUP BY model ORDER BY turns DESC"
    sql = st.text_area("Query", key="sq_sql", height=160,
                       help="Named parameters like $model or :model become input fields below.")
    try:
        names = list(sqlguard.query_params(sql)) if sql.strip() else []
    except MonitorError:
        names = []  # the guard reports syntax errors when the query runs
    params = {}
    if names:
        cols = st.columns(min(len(names), 4))
        for i, n in enumerate(names):
            params[n] = cols[i % len(cols)].text_input(f"${n}", key=f"sq_param_{n}")
    r1, r2, r3 = st.columns(3)
    row_limit = r1.number_input("Row cap", min_value=1, max_value=100_000, value=int(cfg.sql_row_limit),
                                key="sq_limit")
    r2.caption(f"Time limit: {cfg.sql_time_limit_s:g} s")
    run = r3.button("Run query", type="primary", key="sq_run")
    if run:
        try:
            res = sqlguard.run_query(c.home, sql, params or None, row_limit=int(row_limit),
                                     time_limit_s=float(cfg.sql_time_limit_s))
            st.session_state["sq_result"] = res
            st.session_state.pop("sq_error", None)
        except MonitorError as e:
            st.session_state.pop("sq_result", None)
            st.session_state["sq_error"] = e
    if st.session_state.get("sq_error") is not None:
        show_error(st.session_state["sq_error"])
    res = st.session_state.get("sq_result")
    if res is not None:
        df = getattr(res, "df", None)
        if df is None or not isinstance(df, pd.DataFrame):
            df = pd.DataFrame(list(res.rows), columns=list(res.columns))
        msg = f"{len(df):,} row(s) in {res.elapsed:.2f} s"
        if res.truncated:
            st.warning(f"{msg}: **truncated** at the row cap of {len(df):,} rows; add a LIMIT or raise the cap.")
        else:
            st.caption(msg)
        st.dataframe(df, hide_index=True)
        st.download_button("Download CSV", df.to_csv(index=False).encode(), file_name="query.csv", mime="text/csv",
                           key="sq_csv")
    if not c.read_only:
        s1, s2 = st.columns([3, 1])
        name = s1.text_input("Save as", key="sq_name", placeholder="name for this query")
        if s2.button("Save query", key="sq_save"):
            if not c.reviewer:
                st.warning("Enter your name under **Reviewer** in the sidebar to save a query.")
            elif not name.strip():
                st.warning("Give the query a name first.")
            else:
                try:
                    sqlguard.validate_select(sql)
                    data.save_query(c.root, name.strip(), sql, c.reviewer)
                    st.session_state["sq_flash"] = f"Saved query '{name.strip()}'."
                    st.rerun()
                except MonitorError as e:
                    show_error(e)
