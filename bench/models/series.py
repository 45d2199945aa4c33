"""Writes the public evaluation series as `timestamp,value` CSVs (RFC 3339, UTC or the
data's own zone), one folder per step: `hourly/`, `half-hourly/`, `daily/`, `weekly/`,
`monthly/`, `quarterly/`. Every series ships inside a PyPI package pinned in
requirements.txt; nothing is downloaded at run time.

Long hourly years are cut into non-overlapping pieces of 1,008 hours (six weeks), so the
hourly set has many series of the length a forecaster sees in practice.

    python series.py OUT_DIR
"""

import os
import sys

import pandas as pd


def write(out, step, name, index, values):
    folder = os.path.join(out, step)
    os.makedirs(folder, exist_ok=True)
    s = pd.Series(list(values), index=pd.DatetimeIndex(index)).dropna()
    s = s[~s.index.duplicated()].sort_index()
    with open(os.path.join(folder, name + ".csv"), "w") as f:
        f.write("timestamp,value\n")
        for t, v in s.items():
            ts = t if t.tzinfo else t.tz_localize("UTC")
            f.write(f"{ts.isoformat()},{float(v):.6g}\n")


def pieces(out, step, name, index, values, length):
    index, values = list(index), list(values)
    for k in range(len(values) // length):
        part = slice(k * length, (k + 1) * length)
        write(out, step, f"{name}-{k + 1}", index[part], values[part])


def main(out):
    import pmdarima.datasets as pm
    import pvlib
    import statsmodels.api as sm
    import vega_datasets

    year = 1008
    # Hourly: temperatures of two cities, and four weather variables of two weather
    # stations' typical years.
    for city in ("seattle-temps", "sf-temps"):
        d = getattr(vega_datasets.local_data, city.replace("-", "_"))()
        pieces(out, "hourly", city, d["date"], d["temp"], year)
    data = os.path.join(os.path.dirname(pvlib.__file__), "data")
    for station in ("723170TYA.CSV", "703165TY.csv"):
        tmy, _ = pvlib.iotools.read_tmy3(os.path.join(data, station), map_variables=True)
        index = pd.date_range("2001-01-01", periods=len(tmy), freq="h", tz="UTC")
        for column in ("ghi", "temp_air", "relative_humidity", "wind_speed"):
            pieces(out, "hourly", f"{station[:6]}-{column}", index, tmy[column], year)
    # Half-hourly: Taylor's electricity demand, 12 weeks (daily and weekly seasons);
    # hourly: the same, summed over each hour.
    taylor = pm.load_taylor()
    index = pd.date_range("2000-06-05", periods=len(taylor), freq="30min", tz="UTC")
    write(out, "half-hourly", "taylor", index, taylor)
    hourly = pd.Series(taylor, index=index).resample("h").sum()
    write(out, "hourly", "taylor", hourly.index, hourly.values)
    # Daily.
    weather = vega_datasets.local_data.seattle_weather()
    for column in ("temp_max", "temp_min", "wind"):
        write(out, "daily", f"seattle-{column}", weather["date"], weather[column])
    msft = pm.load_msft()
    write(out, "daily", "msft", msft["Date"], msft["Close"])
    # Weekly.
    co2 = sm.datasets.co2.load_pandas().data["co2"].interpolate()
    write(out, "weekly", "co2", co2.index, co2.values)
    # Monthly and quarterly.
    for name, start in (("airpassengers", "1949-01"), ("wineind", "1980-01")):
        y = getattr(pm, "load_" + name)()
        write(out, "monthly", name, pd.date_range(start, periods=len(y), freq="MS"), y)
    from statsmodels.datasets import elec_equip

    elec = elec_equip.load().data.iloc[:, 0]
    write(out, "monthly", "elec-equip", elec.index, elec.values)
    sunspots = pm.load_sunspots()
    write(out, "monthly", "sunspots",
          pd.date_range("1749-01", periods=len(sunspots), freq="MS"), sunspots)
    for name, start in (("ausbeer", "1956-01"), ("woolyrnq", "1965-01")):
        y = getattr(pm, "load_" + name)()
        write(out, "quarterly", name, pd.date_range(start, periods=len(y), freq="QS"), y)


if __name__ == "__main__":
    main(sys.argv[1])
