"""Alarms: the ISA-18.2 lifecycle of alert episodes (``lifecycle``, pure), their store
(``store``: SQLite tables beside the tickets) and the EEMUA 191 / ISA-18.2 KPIs (``kpis``, pure).
"""
