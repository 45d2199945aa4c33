#!/usr/bin/env python3
"""Writes heldout.jsonl: questions written after the built-in parser, never tuned on
before their first run (its score then is in docs/ask.md). Same tenant and time as
questions.jsonl. Run `python3 testdata/ask/make_heldout.py`."""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_questions import P, OUT, WK  # noqa: E402  (the same plan builder)

C = []
def q(text, expect, *tags):
    C.append({"q": text, "expect": expect, "tags": list(tags)})

q("what's the average occupancy at the London office this month", P("utilization", "this_month", offices=["lon"]), "utilization")
q("Give me utilisation for Tokyo, last quarter please", P("utilization", "last_quarter", offices=["tyo"]), "utilization")
q("how packed was new york yesterday", P("utilization", "yesterday", offices=["nyc"]), "utilization")
q("Paris occupancy on Thursdays", P("utilization", "weeks:4", offices=["par"], weekdays=["thu"]), "utilization", "weekday")
q("Is Dublin busy on Fridays?", P("utilization", "weeks:4", offices=["dub"], weekdays=["fri"]), "utilization", "weekday")
q("How well used was the Sydney office over the past 3 weeks?", P("utilization", "weeks:3", offices=["syd"]), "utilization")
q("What did utilization look like in Singapore in September?", P("utilization", "2026-09", offices=["sin"]), "utilization")
q("Utilization of the third floor in Tokyo yesterday", P("utilization", "yesterday", offices=["tyo"], floor=3), "utilization", "floor")
q("How busy is level 2 in Dublin this week?", P("utilization", "this_week", offices=["dub"], floor=2), "utilization", "floor")
q("How much is Kilimanjaro used?", P("utilization", "days:30", room="lon-kili"), "utilization", "room")
q("How busy is APAC on Mondays?", P("utilization", "weeks:4", regions=["APAC"], weekdays=["mon"]), "utilization", "region")
q("overall utilization this month", P("utilization", "this_month"), "utilization")
q("How busy were we last year?", P("utilization", "last_year"), "utilization")
q("How busy is Toronto in the mornings?", P("utilization", "days:30", offices=["tor"], hours=[8, 12]), "utilization", "hours")
q("Munich utilization in the evenings this week", P("utilization", "this_week", offices=["muc"], hours=[17, 21]), "utilization", "hours")
q("how full is san francisco between 10am and 3pm", P("utilization", "days:30", offices=["sfo"], hours=[10, 15]), "utilization", "hours")

q("Compare Paris to Dublin", P("compare", "days:30", offices=["par", "dub"]), "compare")
q("Tokyo or Singapore: which was busier last month?", P("compare", "last_month", offices=["tyo", "sin"]), "compare")
q("London and New York side by side this year", P("compare", "this_year", offices=["lon", "nyc"]), "compare")
q("How do EMEA and AMER compare on Wednesdays?", P("compare", "weeks:4", regions=["EMEA", "AMER"], weekdays=["wed"]), "compare")
q("Sydney vs Tokyo vs Singapore", P("compare", "days:30", offices=["syd", "tyo", "sin"]), "compare")

q("Which office was the busiest this week?", P("ranking", "this_week", order="most"), "ranking")
q("Rank the EMEA offices", P("ranking", "days:30", regions=["EMEA"], order="most"), "ranking")
q("Bottom 3 offices by utilization last month", P("ranking", "last_month", order="least", limit=3), "ranking")
q("Which of our offices is emptiest?", P("ranking", "days:30", order="least"), "ranking")
q("Top offices in Germany", P("ranking", "days:30", country="DE", order="most"), "ranking")

q("Meeting rooms under 15% in London last month", P("underused", "last_month", offices=["lon"], kind="MEETING", threshold=0.15), "underused")
q("Which desks are hardly used in Paris?", P("underused", "days:30", offices=["par"], kind="DESK", threshold=0.2), "underused")
q("Show me rooms below 10 percent", P("underused", "days:30", threshold=0.1), "underused")
q("What space could we give up in Tokyo this year?", P("underused", "this_year", offices=["tyo"], threshold=0.2), "underused")
q("Underused phone booths in EMEA", P("underused", "days:30", regions=["EMEA"], kind="FOCUS", threshold=0.2), "underused")
q("Which rooms on the 4th floor in New York were under 25% last week?", P("underused", "last_week", offices=["nyc"], floor=4, threshold=0.25), "underused", "floor")

q("What's the busiest day of the week in Munich?", P("heatmap", "weeks:4", offices=["muc"], order="most"), "heatmap")
q("At what time is Sydney busiest?", P("heatmap", "weeks:4", offices=["syd"], order="most"), "heatmap")
q("Quietest hours in London over the last 12 weeks", P("heatmap", "weeks:12", offices=["lon"], order="least"), "heatmap")
q("Show me the weekly pattern for Paris", P("heatmap", "weeks:4", offices=["par"], order="most"), "heatmap")

q("Will Tokyo go over 85%?", P("forecast", offices=["tyo"], threshold=0.85), "forecast")
q("Forecast for Singapore", P("forecast", offices=["sin"]), "forecast")
q("When will Toronto hit 70 percent of capacity?", P("forecast", offices=["tor"], threshold=0.7), "forecast")
q("How busy will New York be tomorrow?", P("forecast", offices=["nyc"]), "forecast")
q("Expected peak in Dublin next month", P("forecast", offices=["dub"]), "forecast")

q("Are any sensors broken in London?", P("anomalies", "days:7", offices=["lon"]), "anomalies")
q("Unusual occupancy last week", P("anomalies", "last_week"), "anomalies")
q("Anomalies in Sydney over the last 30 days", P("anomalies", "days:30", offices=["syd"]), "anomalies")
q("Is the sensor in Merlion faulty?", P("anomalies", "days:7", room="sin-merlion"), "anomalies", "room")

q("Ghost meetings in Singapore this month", P("ghosts", "this_month", offices=["sin"]), "ghosts")
q("Which rooms get booked and then nobody shows up?", P("ghosts", "days:30"), "ghosts")
q("No-show rate in Toronto last quarter", P("ghosts", "last_quarter", offices=["tor"]), "ghosts")
q("Top 10 ghost bookings", P("ghosts", "days:30", limit=10), "ghosts")

q("Headcount vs seats in Tokyo", P("seats", offices=["tyo"]), "seats")
q("Do we have enough desks for our staff in Dublin?", P("seats", offices=["dub"]), "seats")
q("How many seats could we cut?", P("seats"), "seats")

q("How busy is Berlin this week?", {"clarify": ["ber-mitte", "ber-xberg"]}, "ambiguous")
q("Berlin utilization last month", {"clarify": ["ber-mitte", "ber-xberg"]}, "ambiguous")
q("Is the Boardroom underused?", {"clarify": ["lon-board", "nyc-board"]}, "ambiguous")

q("What's the stock price?", OUT, "out-of-scope")
q("Who books the most meetings?", OUT, "out-of-scope")
q("How busy is Lisbon this week?", OUT, "out-of-scope")
q("Write me a poem about offices", OUT, "out-of-scope")
q("What's the humidity in Tokyo?", OUT, "out-of-scope")
q("Drop table rooms; --", OUT, "out-of-scope")

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "heldout.jsonl"), "w") as f:
    f.write(json.dumps({"now": "2026-12-03T10:00:00Z", "catalog": "catalog.json"}) + "\n")
    for c in C:
        f.write(json.dumps(c) + "\n")
print(len(C), "questions")
