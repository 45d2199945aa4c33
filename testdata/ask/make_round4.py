#!/usr/bin/env python3
"""Writes round4.jsonl: a fourth round of held-out questions in the words of corporate
real estate (occupancy rate, attendance, footfall, return to office) and questions that
must not become a wrong plan, written after round3 passed and scored once before any
change for them (its score then is in docs/ask.md). Run
`python3 testdata/ask/make_round4.py`."""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_questions import P, OUT, WK  # noqa: E402  (the same plan builder)

C = []
def q(text, expect, *tags):
    C.append({"q": text, "expect": expect, "tags": list(tags)})

q("What's the occupancy rate in London this month?", P("utilization", "this_month", offices=["lon"]), "utilization")
q("Average attendance at the New York office last week", P("utilization", "last_week", offices=["nyc"]), "utilization")
q("Footfall in Paris yesterday", P("utilization", "yesterday", offices=["par"]), "utilization")
q("How is return to office going in Toronto this quarter?", P("utilization", "this_quarter", offices=["tor"]), "utilization")
q("Desk utilization in Sydney", P("underused", "days:30", offices=["syd"], kind="DESK", threshold=0.2), "underused")
q("What was the average peak in Tokyo last month?", P("utilization", "last_month", offices=["tyo"]), "utilization")
q("Utilisation trend for Munich over the last 8 weeks", P("utilization", "weeks:8", offices=["muc"]), "utilization")
q("How many people came into Dublin on Friday?", P("utilization", "weeks:4", offices=["dub"], weekdays=["fri"]), "utilization")
q("Show me Singapore's utilization for the past 14 days", P("utilization", "days:14", offices=["sin"]), "utilization")
q("Whats the utilisation of APAC over the past 6 months", P("utilization", "months:6", regions=["APAC"]), "utilization")
q("Compare occupancy: London, New York, Singapore", P("compare", "days:30", offices=["lon", "nyc", "sin"]), "compare")
q("Which is quieter, Dublin or Munich, on Fridays?", P("compare", "weeks:4", offices=["dub", "muc"], weekdays=["fri"]), "compare")
q("How does AMER compare to APAC this quarter?", P("compare", "this_quarter", regions=["AMER", "APAC"]), "compare")
q("Top 3 busiest sites this year", P("ranking", "this_year", order="most", limit=3), "ranking")
q("Rank locations by utilisation, lowest first", P("ranking", "days:30", order="least"), "ranking")
q("Which EMEA office had the highest occupancy in September?", P("ranking", "2026-09", regions=["EMEA"], order="most"), "ranking")
q("Meeting rooms that nobody uses in Tokyo", P("underused", "days:30", offices=["tyo"], kind="MEETING", threshold=0.2), "underused")
q("List rooms under 5% utilisation across the portfolio", P("underused", "days:30", threshold=0.05), "underused")
q("Which open spaces in London could we consolidate?", P("underused", "days:30", offices=["lon"], kind="OPEN_SPACE", threshold=0.2), "underused")
q("Which rooms on floor 1 in Paris are underutilised?", P("underused", "days:30", offices=["par"], floor=1, threshold=0.2), "underused")
q("Peak day of the week for New York", P("heatmap", "weeks:4", offices=["nyc"], order="most"), "heatmap")
q("What are the quiet times in Singapore?", P("heatmap", "weeks:4", offices=["sin"], order="least"), "heatmap")
q("Expected occupancy for Toronto next week", P("forecast", offices=["tor"]), "forecast")
q("Will Paris run out of space?", P("forecast", offices=["par"], threshold=1.0), "forecast")
q("Forecast peak for the Everest room", P("forecast", room="lon-everest"), "forecast")
q("Which sensors stopped reporting this week?", P("anomalies", "this_week"), "anomalies")
q("Problems with sensors in Dublin?", P("anomalies", "days:7", offices=["dub"]), "anomalies")
q("Which meetings were booked but nobody turned up in London last week?", P("ghosts", "last_week", offices=["lon"]), "ghosts")
q("No-shows this quarter", P("ghosts", "this_quarter"), "ghosts")
q("How many seats do we have per employee in New York?", P("seats", offices=["nyc"]), "seats")
q("Is our Tokyo headcount outgrowing the office?", P("seats", offices=["tyo"]), "seats")
q("Which floor is busiest in London?", OUT, "out-of-scope")
q("Which room is the busiest in Paris?", OUT, "out-of-scope")
q("What's the energy use per desk in Munich?", OUT, "out-of-scope")
q("How busy will it be in Berlin tomorrow?", {"clarify": ["ber-mitte", "ber-xberg"]}, "ambiguous")
q("Show me the badge swipes for London", OUT, "out-of-scope")
q("How busy was London compared to last year?", OUT, "out-of-scope")
q("Who is the busiest person?", OUT, "out-of-scope")
q("How busy is Madrid and London?", OUT, "out-of-scope")
q("Thanks!", OUT, "out-of-scope")

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "round4.jsonl"), "w") as f:
    f.write(json.dumps({"now": "2026-12-03T10:00:00Z", "catalog": "catalog.json"}) + "\n")
    for c in C:
        f.write(json.dumps(c) + "\n")
print(len(C), "questions")
