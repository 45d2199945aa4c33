#!/usr/bin/env python3
"""Writes questions.jsonl: the plain-language questions `roomflow ask --eval` scores the
built-in parser on, with the plan each should become. Edit the cases here, then run
`python3 testdata/ask/make_questions.py`. The questions are asked on Thursday
2026-12-03 at 10:00 UTC, of the tenant in catalog.json."""
import json, os

def P(op, period=None, tags=(), **kw):
    plan = {"op": op, "scope": {}}
    for k in ("regions", "country", "offices", "floor", "kind", "room"):
        if k in kw:
            plan["scope"][k] = kw.pop(k)
    if period: plan["period"] = period
    when = {}
    if "weekdays" in kw: when["weekdays"] = kw.pop("weekdays")
    if "hours" in kw: when["hours"] = kw.pop("hours")
    if when: plan["when"] = when
    for k in ("threshold", "order", "limit"):
        if k in kw: plan[k] = kw.pop(k)
    assert not kw, kw
    return plan

C = []
def q(text, expect, *tags):
    C.append({"q": text, "expect": expect, "tags": list(tags)})

OUT = "out_of_scope"
WK = ["mon", "tue", "wed", "thu", "fri"]

# --- utilization -------------------------------------------------------------------
q("How busy is London on Tuesdays?", P("utilization", "weeks:4", offices=["lon"], weekdays=["tue"]), "utilization", "weekday")
q("How busy was London last month?", P("utilization", "last_month", offices=["lon"]), "utilization", "relative-date")
q("What was the utilization of New York this quarter?", P("utilization", "this_quarter", offices=["nyc"]), "utilization", "relative-date")
q("how full is paris this week", P("utilization", "this_week", offices=["par"]), "utilization", "relative-date")
q("Average occupancy in Tokyo over the last 30 days", P("utilization", "days:30", offices=["tyo"]), "utilization", "relative-date")
q("How busy was Singapore yesterday afternoon?", P("utilization", "yesterday", offices=["sin"], hours=[12, 17]), "utilization", "relative-date", "hours")
q("How busy is Dublin on Mondays and Fridays?", P("utilization", "weeks:4", offices=["dub"], weekdays=["mon", "fri"]), "utilization", "weekday")
q("What's the peak utilisation of floor 3 in London last week?", P("utilization", "last_week", offices=["lon"], floor=3), "utilization", "floor")
q("How busy is the 2nd floor of New York this month?", P("utilization", "this_month", offices=["nyc"], floor=2), "utilization", "floor")
q("How used is Everest?", P("utilization", "days:30", room="lon-everest"), "utilization", "room")
q("How busy was the Hudson room last week?", P("utilization", "last_week", room="nyc-hudson"), "utilization", "room")
q("What is EMEA's utilization this year?", P("utilization", "this_year", regions=["EMEA"]), "utilization", "region")
q("How busy is APAC this month?", P("utilization", "this_month", regions=["APAC"]), "utilization", "region")
q("How busy is the portfolio overall last quarter?", P("utilization", "last_quarter"), "utilization", "relative-date")
q("How busy are our offices in the past 2 weeks?", P("utilization", "weeks:2"), "utilization", "relative-date")
q("How busy was Toronto in October?", P("utilization", "2026-10", offices=["tor"]), "utilization", "relative-date")
q("Utilization for Sydney during March", P("utilization", "2026-03", offices=["syd"]), "utilization", "relative-date")
q("How busy is San Francisco on weekdays?", P("utilization", "weeks:4", offices=["sfo"], weekdays=WK), "utilization", "weekday")
q("How crowded is Munich on weekends?", P("utilization", "weeks:4", offices=["muc"], weekdays=["sat", "sun"]), "utilization", "weekday")
q("How busy is London between 9 and 11 on Tuesdays?", P("utilization", "weeks:4", offices=["lon"], weekdays=["tue"], hours=[9, 11]), "utilization", "hours", "weekday")
q("How busy is NYC this morning?", P("utilization", "today", offices=["nyc"], hours=[8, 12]), "utilization", "hours", "relative-date")
q("How busy is London right now?", P("utilization", "today", offices=["lon"]), "utilization", "relative-date")
q("How busy is Paris today?", P("utilization", "today", offices=["par"]), "utilization", "relative-date")
q("Occupancy of Berlin Mitte last 7 days", P("utilization", "days:7", offices=["ber-mitte"]), "utilization", "relative-date")
q("How busy was Kreuzberg last week?", P("utilization", "last_week", offices=["ber-xberg"]), "utilization")
q("What was the average utilization in Singapore over the previous 3 months?", P("utilization", "months:3", offices=["sin"]), "utilization", "relative-date")
q("How busy were Tokyo's Thursday afternoons last month?", P("utilization", "last_month", offices=["tyo"], weekdays=["thu"], hours=[12, 17]), "utilization", "hours", "weekday")
q("How busy is Dublin year to date?", P("utilization", "this_year", offices=["dub"]), "utilization", "relative-date")
q("usage of floor 4 in paris this month", P("utilization", "this_month", offices=["par"], floor=4), "utilization", "floor")
q("How busy is Room 4.12 on Wednesdays?", P("utilization", "weeks:4", room="lon-412", weekdays=["wed"]), "utilization", "room", "weekday")
q("How busy was Fuji yesterday?", P("utilization", "yesterday", room="tyo-fuji"), "utilization", "room")
q("What's Sydney's occupancy been like lately?", P("utilization", "days:30", offices=["syd"]), "utilization")
q("How busy is AMER last month?", P("utilization", "last_month", regions=["AMER"]), "utilization", "region")
q("How busy is Europe this quarter?", P("utilization", "this_quarter", regions=["EMEA"]), "utilization", "region")
q("How busy is London at lunchtime?", P("utilization", "days:30", offices=["lon"], hours=[12, 14]), "utilization", "hours")
q("How busy is New York from 2pm to 5pm?", P("utilization", "days:30", offices=["nyc"], hours=[14, 17]), "utilization", "hours")

# --- typos -------------------------------------------------------------------------
q("How bsuy is Londn on Tuesdays?", P("utilization", "weeks:4", offices=["lon"], weekdays=["tue"]), "utilization", "typo")
q("utilisaton of Pairs last month", P("utilization", "last_month", offices=["par"]), "utilization", "typo")
q("How busy was Singapure last weeek?", P("utilization", "last_week", offices=["sin"]), "utilization", "typo")
q("Compare New Yrok and London this quartr", P("compare", "this_quarter", offices=["nyc", "lon"]), "compare", "typo")
q("Which meeting rooms in EMEA were undr 20% last month?", P("underused", "last_month", regions=["EMEA"], kind="MEETING", threshold=0.2), "underused", "typo")
q("wich rooms are boked but empty most often?", P("ghosts", "days:30"), "ghosts", "typo")
q("Whn will Berlin Mite pass 80% at peak?", P("forecast", offices=["ber-mitte"], threshold=0.8), "forecast", "typo")
q("Any anomalys in Tokyo this week?", P("anomalies", "this_week", offices=["tyo"]), "anomalies", "typo")
q("busiest ofices last month", P("ranking", "last_month", order="most"), "ranking", "typo")
q("How ocupied is Dublin on Wensdays?", P("utilization", "weeks:4", offices=["dub"], weekdays=["wed"]), "utilization", "typo", "weekday")
q("heatmap for Torronto", P("heatmap", "weeks:4", offices=["tor"], order="most"), "heatmap", "typo")
q("How busy is Sydny yesterday", P("utilization", "yesterday", offices=["syd"]), "utilization", "typo")
q("Compare Munch and Dublin", P("compare", "days:30", offices=["muc", "dub"]), "compare", "typo")
q("under-used focus roms in London", P("underused", "days:30", offices=["lon"], kind="FOCUS", threshold=0.2), "underused", "typo")
q("Is the headcont in Paris too big for its seats?", P("seats", offices=["par"]), "seats", "typo")
q("faulty sensers in New York", P("anomalies", "days:7", offices=["nyc"]), "anomalies", "typo")
q("How busy is San Fransisco this month?", P("utilization", "this_month", offices=["sfo"]), "utilization", "typo")
q("utilization of Tokio on fridays", P("utilization", "weeks:4", offices=["tyo"], weekdays=["fri"]), "utilization", "typo", "weekday")

# --- comparisons -------------------------------------------------------------------
q("Compare New York and London this quarter", P("compare", "this_quarter", offices=["nyc", "lon"]), "compare", "relative-date")
q("Is London busier than Paris?", P("compare", "days:30", offices=["lon", "par"]), "compare")
q("London vs Singapore last month", P("compare", "last_month", offices=["lon", "sin"]), "compare", "relative-date")
q("Compare EMEA and APAC this year", P("compare", "this_year", regions=["EMEA", "APAC"]), "compare", "region")
q("How does Tokyo compare with Sydney on Mondays?", P("compare", "weeks:4", offices=["tyo", "syd"], weekdays=["mon"]), "compare", "weekday")
q("Dublin versus Munich versus Paris last week", P("compare", "last_week", offices=["dub", "muc", "par"]), "compare")
q("Which is busier, Toronto or San Francisco?", P("compare", "days:30", offices=["tor", "sfo"]), "compare")
q("What's the difference between Berlin Mitte and Berlin Kreuzberg last month?", P("compare", "last_month", offices=["ber-mitte", "ber-xberg"]), "compare")
q("Compare AMER against EMEA in October", P("compare", "2026-10", regions=["AMER", "EMEA"]), "compare", "region")
q("compare london, paris and dublin on fridays", P("compare", "weeks:4", offices=["lon", "par", "dub"], weekdays=["fri"]), "compare", "weekday")
q("NYC vs SF this week", P("compare", "this_week", offices=["nyc", "sfo"]), "compare")
q("Were Tokyo mornings busier than Singapore mornings last month?", P("compare", "last_month", offices=["tyo", "sin"], hours=[8, 12]), "compare", "hours")
q("Compare Mitte and Kreuzberg", P("compare", "days:30", offices=["ber-mitte", "ber-xberg"]), "compare")
q("Compare London with New York over the last 6 months", P("compare", "months:6", offices=["lon", "nyc"]), "compare", "relative-date")

# --- rankings ----------------------------------------------------------------------
q("Which offices were busiest last month?", P("ranking", "last_month", order="most"), "ranking", "relative-date")
q("Rank our offices by utilization this quarter", P("ranking", "this_quarter", order="most"), "ranking")
q("What are the 3 quietest offices?", P("ranking", "days:30", order="least", limit=3), "ranking")
q("Top 5 offices in EMEA last week", P("ranking", "last_week", regions=["EMEA"], order="most", limit=5), "ranking", "region")
q("Which office in APAC is the least used?", P("ranking", "days:30", regions=["APAC"], order="least"), "ranking", "region")
q("Lowest utilization offices in Germany this year", P("ranking", "this_year", country="DE", order="least"), "ranking", "country")
q("busiest office in the US yesterday", P("ranking", "yesterday", country="US", order="most"), "ranking", "country")
q("Which sites had the highest utilization in November?", P("ranking", "2026-11", order="most"), "ranking", "relative-date")
q("Show the office ranking for the last 90 days", P("ranking", "days:90", order="most"), "ranking", "relative-date")
q("What are our ten busiest offices?", P("ranking", "days:30", order="most", limit=10), "ranking")
q("Which location is quietest in AMER this month?", P("ranking", "this_month", regions=["AMER"], order="least"), "ranking", "region")
q("worst performing offices last quarter", P("ranking", "last_quarter", order="least"), "ranking")

# --- under-used rooms ----------------------------------------------------------------
q("Which meeting rooms in EMEA were under 20% last month?", P("underused", "last_month", regions=["EMEA"], kind="MEETING", threshold=0.2), "underused", "kind", "region")
q("Which rooms are underused?", P("underused", "days:30", threshold=0.2), "underused")
q("Rooms below 10% utilization in London this quarter", P("underused", "this_quarter", offices=["lon"], threshold=0.1), "underused")
q("Which desks in New York were used less than 15 percent last month?", P("underused", "last_month", offices=["nyc"], kind="DESK", threshold=0.15), "underused", "kind")
q("Which rooms could we give up in Paris?", P("underused", "days:30", offices=["par"], threshold=0.2), "underused")
q("Show me idle focus booths in APAC", P("underused", "days:30", regions=["APAC"], kind="FOCUS", threshold=0.2), "underused", "kind", "region")
q("least used rooms on floor 2 of Tokyo", P("underused", "days:30", offices=["tyo"], floor=2, threshold=0.2), "underused", "floor")
q("Which open spaces in Germany are under 30%?", P("underused", "days:30", country="DE", kind="OPEN_SPACE", threshold=0.3), "underused", "country", "kind")
q("List 5 rooms under 5% in Singapore over the past 2 months", P("underused", "months:2", offices=["sin"], threshold=0.05, limit=5), "underused")
q("Which meeting rooms are rarely used?", P("underused", "days:30", kind="MEETING", threshold=0.2), "underused", "kind")
q("Underutilized collaboration spaces in the US last quarter", P("underused", "last_quarter", country="US", kind="COLLAB", threshold=0.2), "underused", "kind", "country")
q("What rooms in Dublin sat empty last week?", P("underused", "last_week", offices=["dub"], threshold=0.2), "underused")
q("Which conference rooms in AMER had utilization below 25% this year?", P("underused", "this_year", regions=["AMER"], kind="MEETING", threshold=0.25), "underused", "region")
q("emptiest rooms in Sydney", P("underused", "days:30", offices=["syd"], threshold=0.2), "underused")

# --- heatmap ------------------------------------------------------------------------
q("When is London busiest?", P("heatmap", "weeks:4", offices=["lon"], order="most"), "heatmap")
q("What time of day is New York quietest?", P("heatmap", "weeks:4", offices=["nyc"], order="least"), "heatmap")
q("Which day is Paris busiest?", P("heatmap", "weeks:4", offices=["par"], order="most"), "heatmap")
q("Peak hours in Tokyo last month", P("heatmap", "last_month", offices=["tyo"], order="most"), "heatmap", "relative-date")
q("Show the heatmap for Singapore over the last 8 weeks", P("heatmap", "weeks:8", offices=["sin"], order="most"), "heatmap", "relative-date")
q("Busiest hour in Dublin on Tuesdays", P("heatmap", "weeks:4", offices=["dub"], weekdays=["tue"], order="most"), "heatmap", "weekday")
q("When is Munich quietest during the week?", P("heatmap", "weeks:4", offices=["muc"], order="least"), "heatmap")
q("what are the busiest times at the Toronto office", P("heatmap", "weeks:4", offices=["tor"], order="most"), "heatmap")

# --- forecasts ----------------------------------------------------------------------
q("When will Berlin Mitte pass 80% at peak?", P("forecast", offices=["ber-mitte"], threshold=0.8), "forecast")
q("Will London exceed 90% of capacity?", P("forecast", offices=["lon"], threshold=0.9), "forecast")
q("What's the forecast for New York?", P("forecast", offices=["nyc"]), "forecast")
q("How busy will Paris be next week?", P("forecast", offices=["par"]), "forecast")
q("Predict Tokyo's peak occupancy", P("forecast", offices=["tyo"]), "forecast")
q("When will Singapore reach 75 percent?", P("forecast", offices=["sin"], threshold=0.75), "forecast")
q("Is Everest expected to be full?", P("forecast", room="lon-everest"), "forecast", "room")
q("forecast for the Hudson room", P("forecast", room="nyc-hudson"), "forecast", "room")
q("Will Dublin hit 100% tomorrow?", P("forecast", offices=["dub"], threshold=1.0), "forecast")
q("What occupancy do we expect in Sydney?", P("forecast", offices=["syd"]), "forecast")

# --- anomalies ----------------------------------------------------------------------
q("Any anomalies this week?", P("anomalies", "this_week"), "anomalies")
q("Which sensors are faulty?", P("anomalies", "days:7"), "anomalies")
q("Was there unusual occupancy in London yesterday?", P("anomalies", "yesterday", offices=["lon"]), "anomalies")
q("Show stuck sensors in Paris last month", P("anomalies", "last_month", offices=["par"]), "anomalies")
q("Anything weird going on in Tokyo?", P("anomalies", "days:7", offices=["tyo"]), "anomalies")
q("Any broken sensors in the Louvre room?", P("anomalies", "days:7", room="par-louvre"), "anomalies", "room")
q("list the 10 latest anomalies", P("anomalies", "days:7", limit=10), "anomalies")
q("Were there occupancy spikes in New York over the last 2 weeks?", P("anomalies", "weeks:2", offices=["nyc"]), "anomalies")

# --- bookings -----------------------------------------------------------------------
q("Which rooms are booked but empty most often?", P("ghosts", "days:30"), "ghosts")
q("Ghost bookings in London last month", P("ghosts", "last_month", offices=["lon"]), "ghosts")
q("Which rooms have the most no-shows?", P("ghosts", "days:30"), "ghosts")
q("Top 3 rooms booked but not used in New York this quarter", P("ghosts", "this_quarter", offices=["nyc"], limit=3), "ghosts")
q("Where do reservations go unused?", P("ghosts", "days:30"), "ghosts")
q("no show meetings in Paris last week", P("ghosts", "last_week", offices=["par"]), "ghosts")
q("Which rooms were reserved but nobody came in Tokyo?", P("ghosts", "days:30", offices=["tyo"]), "ghosts")

# --- seats --------------------------------------------------------------------------
q("Do we have too many seats in London?", P("seats", offices=["lon"]), "seats")
q("Seats against headcount", P("seats"), "seats")
q("How many desks do we need in New York?", P("seats", offices=["nyc"]), "seats")
q("Headcount versus capacity in Singapore", P("seats", offices=["sin"]), "seats")
q("Could we reduce seats in Paris?", P("seats", offices=["par"]), "seats")
q("How many employees per seat across the portfolio?", P("seats"), "seats")

# --- ambiguous names ------------------------------------------------------------------
q("How busy is Berlin?", {"clarify": ["ber-mitte", "ber-xberg"]}, "ambiguous")
q("Compare Berlin and London", {"clarify": ["ber-mitte", "ber-xberg"]}, "ambiguous")
q("When will Berlin pass 80% at peak?", {"clarify": ["ber-mitte", "ber-xberg"]}, "ambiguous")
q("How busy was the Boardroom last week?", {"clarify": ["lon-board", "nyc-board"]}, "ambiguous", "room")
q("underused rooms in Berlin", {"clarify": ["ber-mitte", "ber-xberg"]}, "ambiguous")
q("How busy is the London Boardroom?", P("utilization", "days:30", room="lon-board"), "room")
q("Berlin heatmap", {"clarify": ["ber-mitte", "ber-xberg"]}, "ambiguous")
q("Ghost bookings in Berlin", {"clarify": ["ber-mitte", "ber-xberg"]}, "ambiguous")

# --- out of scope -------------------------------------------------------------------
q("What's the weather in London?", OUT, "out-of-scope")
q("Who was in the Everest room yesterday?", OUT, "out-of-scope")
q("What is the temperature on floor 3 in Paris?", OUT, "out-of-scope")
q("What was our revenue last quarter?", OUT, "out-of-scope")
q("Tell me a joke", OUT, "out-of-scope")
q("Which employees come in on Fridays?", OUT, "out-of-scope")
q("How many parking spaces does Tokyo have?", OUT, "out-of-scope")
q("What's the CO2 level in Dublin?", OUT, "out-of-scope")
q("How busy is Madrid?", OUT, "out-of-scope")
q("Delete all the data", OUT, "out-of-scope")
q("How busy will London be next year compared to Paris?", OUT, "out-of-scope")
q("How much energy did New York use last month?", OUT, "out-of-scope")
q("", OUT, "out-of-scope")
q("SELECT * FROM rooms", OUT, "out-of-scope")

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "questions.jsonl"), "w") as f:
        f.write(json.dumps({"now": "2026-12-03T10:00:00Z", "catalog": "catalog.json"}) + "\n")
        for c in C:
            f.write(json.dumps(c) + "\n")
    print(len(C), "questions")
