//! `smmctl sandbox`: the local stand-ins for the panel's outside services,
//! until Ctrl-C, with the settings that point the workers at them.

use std::net::SocketAddr;

use smm_testbed::sandbox::{self, SandboxOptions};

use crate::Context;
use crate::cli::SandboxArgs;
use crate::exit::{ExitStatus, UsageError};

fn addr(what: &str, text: &str) -> Result<SocketAddr, UsageError> {
    text.parse().map_err(|_| {
        UsageError::new(format!(
            "invalid {what} `{text}`: write it as HOST:PORT with an IP address, like 127.0.0.1:8099"
        ))
    })
}

pub async fn run(args: SandboxArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let http = addr("--addr", &args.addr)?;
    let smtp = addr("--smtp-addr", &args.smtp_addr)?;
    let options = SandboxOptions {
        youtube_quota: args.youtube_quota,
        delivery_duration: args.delivery_duration,
        ..SandboxOptions::default()
    };
    let (stop, shutdown) = smm_workers::runtime::shutdown_on_signals();
    let (handle, server) = sandbox::start(http, options.clone(), shutdown.clone())
        .await
        .map_err(|e| UsageError::new(format!("cannot listen on {http} for the sandbox: {e}")))?;
    let mail = smm_testbed::smtp_sink::SmtpSink::start(smtp)
        .map_err(|e| UsageError::new(format!("cannot listen on {smtp} for the SMTP sink: {e}")))?;
    let url = handle.url();
    ctx.printer.raw(&format!(
        "export SMM_YOUTUBE_URL={url}\n\
         export SMM_YOUTUBE_API_KEY={}\n\
         export SMM_DELIVERY_URL={url}\n\
         export SMM_BINOM_URL={url}\n\
         export SMM_BINOM_API_KEY={}\n\
         export SMM_SMS_URL={url}/notify/sms\n\
         export SMM_PUSH_URL={url}/notify/push\n\
         export SMM_SMTP_URL=smtp://{}\n",
        options.youtube_api_key,
        options.binom_api_key,
        mail.addr(),
    ));
    ctx.printer.note(&format!(
        "sandbox serving on {url} (calls: {url}/sandbox) and SMTP on {}; Ctrl-C stops it",
        mail.addr()
    ));
    let mut wait = shutdown.clone();
    let _ = wait.wait_for(|down| *down).await;
    let _ = stop.send(true);
    let _ = server.await;
    drop(mail);
    Ok(ExitStatus::Success)
}
