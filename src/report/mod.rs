//! Reports drawn from the KPIs: the weekly review's chart (`chart`).

pub mod chart;
