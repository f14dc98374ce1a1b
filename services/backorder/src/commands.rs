//! Each command: the request it sends (a pure function of its arguments), the calls, and the view of the reply.

use backorder_proto::v1::{
    BackorderOrder, ChangePriorityReply, ChangePriorityRequest, GetKpisReply, GetKpisRequest,
    GetOrderReply, GetOrderRequest, GetSkuQueueReply, GetSkuQueueRequest, ListBackordersReply,
    ListBackordersRequest, ListDeadLettersReply, ListDeadLettersRequest, PreviewReceiptReply,
    PreviewReceiptRequest, ReplayDeadLetterReply, ReplayDeadLetterRequest,
};
use backorder_runtime::time;

use crate::cli::{BackordersArgs, Command, DlqCommand, KpiArgs, Sort};
use crate::client::{Api, Failure};
use crate::parse;
use crate::render::Output;
use crate::view;

/// The largest pages the API gives, for --all without --limit.
const BACKORDERS_PAGE_MAX: u32 = 1000;
const DEAD_LETTERS_PAGE_MAX: u32 = 500;

pub fn backorders_request(args: &BackordersArgs, page_token: &str) -> ListBackordersRequest {
    let order_by = match args.sort {
        Sort::Age => BackorderOrder::ByAge,
        Sort::Eta => BackorderOrder::ByEta,
        Sort::Queue => BackorderOrder::ByQueue,
        Sort::Units => BackorderOrder::ByUnits,
        Sort::Order => BackorderOrder::ByOrder,
        Sort::Customer => BackorderOrder::ByCustomer,
    };
    ListBackordersRequest {
        sku: args.sku.clone().unwrap_or_default(),
        customer_id: args.customer.clone().unwrap_or_default(),
        older_than: args.older_than.map(parse::to_proto_duration),
        late_only: args.late,
        estimated_only: args.estimated,
        page_size: page_size(args.limit, args.all, BACKORDERS_PAGE_MAX),
        page_token: page_token.into(),
        order_by: order_by as i32,
        descending: args.desc,
        search: args.search.clone().unwrap_or_default(),
    }
}

/// --limit, else the largest page for --all, else 0: the API's default.
fn page_size(limit: Option<u32>, all: bool, largest: u32) -> u32 {
    limit.unwrap_or(if all { largest } else { 0 })
}

pub fn kpi_request(args: &KpiArgs) -> GetKpisRequest {
    GetKpisRequest {
        from: args.from.map(time::to_proto),
        to: args.to.map(time::to_proto),
        customer_id: args.customer.clone().unwrap_or_default(),
        sku: args.sku.clone().unwrap_or_default(),
    }
}

/// Asks page after page while `all` and the reply names a next page; the rows of every page in one reply.
/// A token that comes back (at once or after other pages) would loop for ever: that reply is refused.
async fn pages<Req, Rep>(
    api: &Api,
    endpoint: &'static str,
    all: bool,
    request: impl Fn(&str) -> Req,
    next: impl Fn(&Rep) -> &str,
    mut merge: impl FnMut(&mut Rep, Rep),
) -> Result<Rep, Failure>
where
    Req: prost::Message,
    Rep: prost::Message + Default,
{
    let mut reply: Rep = api.call(endpoint, &request("")).await?;
    let mut asked = std::collections::HashSet::new();
    while all && !next(&reply).is_empty() {
        let token = next(&reply).to_string();
        if !asked.insert(token.clone()) {
            return Err(Failure::BadReply {
                endpoint: endpoint.into(),
                detail: format!(
                    "the next page {token:?} was shown already: the pages go round in a circle"
                ),
            });
        }
        let page: Rep = api.call(endpoint, &request(&token)).await?;
        merge(&mut reply, page);
    }
    Ok(reply)
}

/// Runs `command` against the API.
pub async fn run(api: &Api, command: &Command) -> Result<Output, Failure> {
    match command {
        Command::Backorders(args) => list_backorders(api, args).await,
        Command::Order { order_id } => show_order(api, order_id).await,
        Command::Sku { sku } => show_sku(api, sku).await,
        Command::Preview { sku, quantity, po } => {
            preview_receipt(api, sku, *quantity, po.as_deref()).await
        }
        Command::Kpi(args) => show_kpis(api, args).await,
        Command::Priority {
            order_id,
            priority,
            reason,
            operator,
        } => change_priority(api, order_id, *priority, reason, operator).await,
        Command::Dlq(DlqCommand::List {
            service,
            limit,
            all,
        }) => list_dead_letters(api, service.as_deref(), *limit, *all).await,
        Command::Dlq(DlqCommand::Show { sequence }) => show_dead_letter(api, *sequence).await,
        Command::Dlq(DlqCommand::Replay {
            sequence,
            operator,
            reason,
        }) => replay_dead_letter(api, *sequence, operator, reason).await,
    }
}

async fn list_backorders(api: &Api, args: &BackordersArgs) -> Result<Output, Failure> {
    let reply: ListBackordersReply = pages(
        api,
        "backorders.list",
        args.all,
        |token| backorders_request(args, token),
        |r: &ListBackordersReply| &r.next_page_token,
        |all, page| {
            all.backorders.extend(page.backorders);
            all.next_page_token = page.next_page_token;
            all.total = page.total;
            all.total_units = page.total_units;
        },
    )
    .await?;
    Ok(view::backorders(&reply))
}

async fn show_order(api: &Api, order_id: &str) -> Result<Output, Failure> {
    let request = GetOrderRequest {
        order_id: order_id.into(),
    };
    let reply: GetOrderReply = api.call("order.get", &request).await?;
    Ok(view::order(&reply))
}

async fn show_sku(api: &Api, sku: &str) -> Result<Output, Failure> {
    let request = GetSkuQueueRequest { sku: sku.into() };
    let reply: GetSkuQueueReply = api.call("sku.queue", &request).await?;
    Ok(view::sku(&reply))
}

async fn preview_receipt(
    api: &Api,
    sku: &str,
    quantity: i64,
    po: Option<&str>,
) -> Result<Output, Failure> {
    let request = PreviewReceiptRequest {
        sku: sku.into(),
        quantity,
        po_id: po.unwrap_or_default().into(),
    };
    let reply: PreviewReceiptReply = api.call("receipt.preview", &request).await?;
    Ok(view::preview(&reply, &request.po_id))
}

async fn show_kpis(api: &Api, args: &KpiArgs) -> Result<Output, Failure> {
    let request = kpi_request(args);
    let reply: GetKpisReply = api.call("kpi.get", &request).await?;
    Ok(view::kpis(&reply, &request.customer_id, &request.sku))
}

async fn change_priority(
    api: &Api,
    order_id: &str,
    priority: i32,
    reason: &str,
    operator: &str,
) -> Result<Output, Failure> {
    let request = ChangePriorityRequest {
        order_id: order_id.into(),
        priority,
        reason: reason.into(),
        operator: operator.into(),
    };
    let reply: ChangePriorityReply = api.call("order.priority", &request).await?;
    Ok(view::priority(&reply, order_id, priority))
}

async fn list_dead_letters(
    api: &Api,
    service: Option<&str>,
    limit: Option<u32>,
    all: bool,
) -> Result<Output, Failure> {
    let request = |token: &str| ListDeadLettersRequest {
        service: service.unwrap_or_default().into(),
        sequence: 0,
        page_size: page_size(limit, all, DEAD_LETTERS_PAGE_MAX),
        page_token: token.into(),
    };
    let reply: ListDeadLettersReply = pages(
        api,
        "deadletters.list",
        all,
        request,
        |r: &ListDeadLettersReply| &r.next_page_token,
        |all, page| {
            all.dead_letters.extend(page.dead_letters);
            all.next_page_token = page.next_page_token;
            all.total = page.total;
        },
    )
    .await?;
    Ok(view::dead_letters(&reply))
}

/// The dead letter at `sequence`; a reply without it is a bad reply.
async fn show_dead_letter(api: &Api, sequence: u64) -> Result<Output, Failure> {
    let request = ListDeadLettersRequest {
        sequence,
        ..Default::default()
    };
    let reply: ListDeadLettersReply = api.call("deadletters.list", &request).await?;
    let entry = reply
        .dead_letters
        .iter()
        .find(|e| e.sequence == sequence)
        .ok_or_else(|| Failure::BadReply {
            endpoint: "deadletters.list".into(),
            detail: format!("no dead letter at sequence {sequence}"),
        })?;
    Ok(view::dead_letter(entry, api.subjects()))
}

async fn replay_dead_letter(
    api: &Api,
    sequence: u64,
    operator: &str,
    reason: &str,
) -> Result<Output, Failure> {
    let request = ReplayDeadLetterRequest {
        sequence,
        operator: operator.into(),
        reason: reason.into(),
    };
    let reply: ReplayDeadLetterReply = api.call("deadletters.replay", &request).await?;
    Ok(view::replay(&reply, sequence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;
    use std::time::Duration;

    fn backorders_args(args: &[&str]) -> BackordersArgs {
        let cli = Cli::try_parse_from(["backorder", "backorders"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Backorders(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_worklist_filters_become_the_request() {
        let args = backorders_args(&[
            "--sku",
            "W",
            "--customer",
            "C-1",
            "--older-than",
            "7d",
            "--late",
            "--estimated",
            "--search",
            "so-1",
            "--sort",
            "units",
            "--desc",
            "--limit",
            "20",
        ]);
        assert_eq!(
            backorders_request(&args, ""),
            ListBackordersRequest {
                sku: "W".into(),
                customer_id: "C-1".into(),
                older_than: Some(parse::to_proto_duration(Duration::from_secs(7 * 86_400))),
                late_only: true,
                estimated_only: true,
                page_size: 20,
                page_token: String::new(),
                order_by: BackorderOrder::ByUnits as i32,
                descending: true,
                search: "so-1".into(),
            }
        );
    }

    #[test]
    fn no_filters_ask_for_the_api_defaults_and_all_asks_for_the_largest_pages() {
        let request = backorders_request(&backorders_args(&[]), "");
        assert_eq!(
            request,
            ListBackordersRequest {
                order_by: BackorderOrder::ByAge as i32,
                ..Default::default()
            }
        );
        let request = backorders_request(&backorders_args(&["--all"]), "tok");
        assert_eq!(
            (request.page_size, request.page_token.as_str()),
            (1000, "tok")
        );
        let request = backorders_request(&backorders_args(&["--all", "--limit", "2"]), "");
        assert_eq!(request.page_size, 2);
    }

    #[test]
    fn kpi_dates_become_timestamps() {
        let cli = Cli::try_parse_from([
            "backorder",
            "kpi",
            "--from",
            "2026-11-01",
            "--customer",
            "C-1",
        ])
        .unwrap();
        let Command::Kpi(args) = cli.command else {
            panic!()
        };
        let request = kpi_request(&args);
        assert_eq!(request.from.map(|t| t.seconds), Some(1_793_491_200));
        assert_eq!(request.to, None);
        assert_eq!(request.customer_id, "C-1");
        assert_eq!(request.sku, "");
    }
}
