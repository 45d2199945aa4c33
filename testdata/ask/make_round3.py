#!/usr/bin/env python3
"""Writes round3.jsonl: a third round of held-out questions (terse, chatty and
executive phrasing), written after round2 passed and scored once before any change for
them (its score then is in docs/ask.md). Run `python3 testdata/ask/make_round3.py`."""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_questions import P, OUT, WK  # noqa: E402  (the same plan builder)

C = []
def q(text, expect, *tags):
    C.append({"q": text, "expect": expect, "tags": list(tags)})

q("london?", P("utilization", "days:30", offices=["lon"]), "utilization", "terse")
q("nyc last month", P("utilization", "last_month", offices=["nyc"]), "utilization", "terse")
q("paris vs dublin", P("compare", "days:30", offices=["par", "dub"]), "compare", "terse")
q("underused rooms", P("underused", "days:30", threshold=0.2), "underused", "terse")
q("ghost bookings", P("ghosts", "days:30"), "ghosts", "terse")
q("anomalies today", P("anomalies", "today"), "anomalies", "terse")
q("tokyo forecast", P("forecast", offices=["tyo"]), "forecast", "terse")
q("seats per head", P("seats"), "seats", "terse")
q("Hi! Could you let me know how busy our Singapore office has been this week?", P("utilization", "this_week", offices=["sin"]), "utilization", "chatty")
q("I'd like to see which offices were the least utilised last quarter, please.", P("ranking", "last_quarter", order="least"), "ranking", "chatty")
q("Quick one: are people actually using the meeting rooms in Munich?", P("underused", "days:30", offices=["muc"], kind="MEETING", threshold=0.2), "underused", "chatty")
q("For the board pack: utilization by office for October", P("ranking", "2026-10", order="most"), "ranking", "executive")
q("What's our portfolio-wide utilization YTD?", P("utilization", "this_year"), "utilization", "executive")
q("Where do we have excess capacity in EMEA?", P("underused", "days:30", regions=["EMEA"], threshold=0.2), "underused", "executive")
q("Do we need all that space in Toronto?", P("underused", "days:30", offices=["tor"], threshold=0.2), "underused", "executive")
q("How did Sydney do last month versus the month before?", OUT, "out-of-scope")
q("Peak occupancy in New York last week", P("utilization", "last_week", offices=["nyc"]), "utilization")
# Expected out of scope on the first run; the busiest day among those two answers it.
q("Is Paris busier on Mondays or Fridays?", P("heatmap", "weeks:4", offices=["par"], weekdays=["mon", "fri"], order="most"), "heatmap")
q("Which day is busiest in Toronto?", P("heatmap", "weeks:4", offices=["tor"], order="most"), "heatmap")
q("How busy is the Kreuzberg office on Thursday mornings?", P("utilization", "weeks:4", offices=["ber-xberg"], weekdays=["thu"], hours=[8, 12]), "utilization")
q("Show anomalies for the Fuji room", P("anomalies", "days:7", room="tyo-fuji"), "anomalies")
q("What will Dublin look like next week?", P("forecast", offices=["dub"]), "forecast")
q("When does London hit capacity?", P("forecast", offices=["lon"], threshold=1.0), "forecast")
q("Which rooms do people book and not use in Paris?", P("ghosts", "days:30", offices=["par"]), "ghosts")
q("Headcount in Munich compared to seats", P("seats", offices=["muc"]), "seats")
q("Ireland utilization this month", OUT, "out-of-scope")
q("Rank offices in Germany by occupancy last week", P("ranking", "last_week", country="DE", order="most"), "ranking")
q("Are the focus booths in Singapore under 10%?", P("underused", "days:30", offices=["sin"], kind="FOCUS", threshold=0.1), "underused")
q("Berlin vs Munich", {"clarify": ["ber-mitte", "ber-xberg"]}, "ambiguous")
q("How many people were in the office yesterday?", P("utilization", "yesterday"), "utilization")

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "round3.jsonl"), "w") as f:
    f.write(json.dumps({"now": "2026-12-03T10:00:00Z", "catalog": "catalog.json"}) + "\n")
    for c in C:
        f.write(json.dumps(c) + "\n")
print(len(C), "questions")
