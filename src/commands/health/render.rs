//! `smmctl health` as tables, or as JSON.

use serde_json::json;

use super::model::Report;
use crate::Context;
use crate::output::Tone;

pub(super) fn render(report: &Report, ctx: &Context) -> anyhow::Result<()> {
    let Report {
        overall,
        categories,
        checks,
        dead_letters,
        groups,
        cluster,
        producer: _,
    } = report;
    let p = &ctx.printer;
    if p.is_json() {
        return p.json(&json!({
            "status": overall,
            "categories": categories,
            "checks": checks,
            "cluster": cluster,
            "dead_letters": dead_letters,
            "groups": groups.iter().map(|g| json!({
                "group": g.group,
                "state": g.state.as_str(),
                "members": g.members.len(),
                "total_lag": g.total_lag(),
                "max_lag_seconds": g.max_lag_seconds(),
                "threshold": g.threshold,
                "over_threshold": g.over_threshold(),
            })).collect::<Vec<_>>(),
        }));
    }
    let fancy = p.colour();
    let mut table = p.table([
        "Topic Category",
        "Active Topics",
        "DLQ Messages",
        "DLQ Retained",
        "Status",
        "Reason",
    ]);
    for c in categories {
        table.add_row(vec![
            p.cell(c.title, Tone::Plain),
            p.cell(c.active_topics.to_string(), Tone::Plain),
            p.cell(crate::output::or_dash(c.dlq_messages), Tone::Plain),
            p.cell(crate::output::or_dash(c.dlq_retained), Tone::Plain),
            p.cell(c.status.label(fancy), c.status.tone()),
            p.cell(c.reasons.join("; "), Tone::Plain),
        ]);
    }
    p.align_right(&mut table, &[1, 2, 3]);
    p.print_table(&table);
    p.line("");
    let mut table = p.table(["CHECK", "RESULT", "DETAIL"]);
    for c in checks {
        let result = serde_json::to_value(c.result)?;
        table.add_row(vec![
            p.cell(c.check, Tone::Plain),
            p.cell(result.as_str().unwrap_or("-"), c.result.tone()),
            p.cell(c.detail.as_str(), Tone::Plain),
        ]);
    }
    p.print_table(&table);
    p.line("");
    p.line(&format!("Overall: {}", overall.label(fancy)));
    Ok(())
}
