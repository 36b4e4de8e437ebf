"""Analyses of people over time: retention, ordered funnels, RFM segments and lifetime value."""
