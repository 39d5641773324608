//! The Regional Readiness Scorecard (issue 17): the framework as data, checked at load
//! (`framework`). Assessments, measured KPIs and the reports that use them come next.

pub mod framework;

pub use framework::{Dimension, Finding, Framework, FrameworkError, Kpi, Level};
