"""KPIs: VN_AQI arithmetic (aqi), reporting periods (periods), SQL-backed query functions
(queries), computation, city roll-ups and storage in kpi_values (compute)."""
