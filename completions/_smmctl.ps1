
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'smmctl' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'smmctl'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'smmctl' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run one of the panel''s workers, or all of them')
            [CompletionResult]::new('simulate', 'simulate', [CompletionResultType]::ParameterValue, 'Send realistic orders through the whole system: webhook, order, delivery, completion')
            [CompletionResult]::new('sandbox', 'sandbox', [CompletionResultType]::ParameterValue, 'Serve local stand-ins for YouTube, the delivery provider, Binom, SMS/push and SMTP')
            [CompletionResult]::new('lag', 'lag', [CompletionResultType]::ParameterValue, 'Consumer lag per group, topic and partition, in messages and in seconds')
            [CompletionResult]::new('groups', 'groups', [CompletionResultType]::ParameterValue, 'List, describe and delete consumer groups')
            [CompletionResult]::new('dlq', 'dlq', [CompletionResultType]::ParameterValue, 'List, inspect, replay and drain dead letters')
            [CompletionResult]::new('offsets', 'offsets', [CompletionResultType]::ParameterValue, 'Reset consumer group offsets, with a preview first')
            [CompletionResult]::new('records', 'records', [CompletionResultType]::ParameterValue, 'Delete records from the start of partitions, with a preview first')
            [CompletionResult]::new('health', 'health', [CompletionResultType]::ParameterValue, 'The panel''s health table and checks, for people and for cron')
            [CompletionResult]::new('topics', 'topics', [CompletionResultType]::ParameterValue, 'Create, compare and clean up the panel''s topics')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Show the effective configuration')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'The trail of executed destructive commands')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Write the checked-in completions and man pages (for maintainers)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;run' {
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The panel store: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB [env: SMM_DATABASE_URL]')
            [CompletionResult]::new('--metrics-addr', '--metrics-addr', [CompletionResultType]::ParameterName, 'Where /metrics and /health are served [env: SMM_METRICS_ADDR] [default: 127.0.0.1:9464]')
            [CompletionResult]::new('--gateway-addr', '--gateway-addr', [CompletionResultType]::ParameterName, 'Where the webhook gateway listens')
            [CompletionResult]::new('--instance', '--instance', [CompletionResultType]::ParameterName, 'This process''s stable name, unique among the copies of these workers (a host or pod name): its workers join their groups as static members, so a restart takes its partitions straight back without a rebalance')
            [CompletionResult]::new('--drain-timeout', '--drain-timeout', [CompletionResultType]::ParameterName, 'How long a record in hand may run on after SIGTERM before it is left for redelivery')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text or JSON')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--list', '--list', [CompletionResultType]::ParameterName, 'Show each worker with its consumer group, topics and retry ladder, and exit')
            [CompletionResult]::new('--rebuild', '--rebuild', [CompletionResultType]::ParameterName, 'With cqrs: empty the read model and rebuild it from the earliest offset of its topics')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'With --rebuild: rebuild even though retention deleted a topic''s early events (orders seen only there are lost)')
            [CompletionResult]::new('--migrate-legacy', '--migrate-legacy', [CompletionResultType]::ParameterName, 'With video: first move the deprecated video.processing.queue into smm.video.processing, exactly once')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;simulate' {
            [CompletionResult]::new('--orders', '--orders', [CompletionResultType]::ParameterName, 'How many orders to send')
            [CompletionResult]::new('--fail-rate', '--fail-rate', [CompletionResultType]::ParameterName, 'Share of orders given a fault, from 0 to 1 (0.25: every fourth)')
            [CompletionResult]::new('--gateway', '--gateway', [CompletionResultType]::ParameterName, 'The webhook gateway''s base URL')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'The panel store the workers use [env: SMM_DATABASE_URL]')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'How long to follow the orders before giving up')
            [CompletionResult]::new('--first-order-id', '--first-order-id', [CompletionResultType]::ParameterName, 'The first order''s id; the others count up from it (default: from the clock, so runs never collide)')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--no-wait', '--no-wait', [CompletionResultType]::ParameterName, 'Send and return at once, without following the orders')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;sandbox' {
            [CompletionResult]::new('--addr', '--addr', [CompletionResultType]::ParameterName, 'Where the HTTP stand-ins listen')
            [CompletionResult]::new('--smtp-addr', '--smtp-addr', [CompletionResultType]::ParameterName, 'Where the SMTP server listens')
            [CompletionResult]::new('--delivery-duration', '--delivery-duration', [CompletionResultType]::ParameterName, 'How long a delivery takes to reach its full quantity')
            [CompletionResult]::new('--youtube-quota', '--youtube-quota', [CompletionResultType]::ParameterName, 'YouTube units granted before it answers quotaExceeded (default: no limit)')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;lag' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Only these groups (repeatable) [default: the panel''s nine groups]')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'Only these groups (repeatable) [default: the panel''s nine groups]')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Only these topics (repeatable); without --group, every group reading them')
            [CompletionResult]::new('--topic', '--topic', [CompletionResultType]::ParameterName, 'Only these topics (repeatable); without --group, every group reading them')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Refresh every INTERVAL and show a status per partition and group')
            [CompletionResult]::new('--window', '--window', [CompletionResultType]::ParameterName, 'With --watch: samples in the status window')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'With --watch: stop after N refreshes [default: run until interrupted]')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--all-groups', '--all-groups', [CompletionResultType]::ParameterName, 'Every group on the cluster')
            [CompletionResult]::new('--partitions', '--partitions', [CompletionResultType]::ParameterName, 'One row per partition')
            [CompletionResult]::new('--summary', '--summary', [CompletionResultType]::ParameterName, 'One row per group')
            [CompletionResult]::new('--no-time', '--no-time', [CompletionResultType]::ParameterName, 'Skip reading record timestamps (no LAG-TIME column; a little faster)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;groups' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every consumer group: state, protocol, members, and whether it is one of the panel''s')
            [CompletionResult]::new('describe', 'describe', [CompletionResultType]::ParameterValue, 'Members, committed offsets and lag of groups, partition by partition')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a group that has no members, after a preview and a confirmation')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;groups;list' {
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Only groups in this state (repeatable): stable, empty, dead, preparing-rebalance, completing-rebalance')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;groups;describe' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;groups;delete' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--execute', '--execute', [CompletionResultType]::ParameterName, 'Act on the plan; without it, only preview')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (needed without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;groups;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every consumer group: state, protocol, members, and whether it is one of the panel''s')
            [CompletionResult]::new('describe', 'describe', [CompletionResultType]::ParameterValue, 'Members, committed offsets and lag of groups, partition by partition')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a group that has no members, after a preview and a confirmation')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;groups;help;list' {
            break
        }
        'smmctl;groups;help;describe' {
            break
        }
        'smmctl;groups;help;delete' {
            break
        }
        'smmctl;groups;help;help' {
            break
        }
        'smmctl;dlq' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every DLT/DLQ topic: records, age, and what the processing group has not handled (exit 1: a financial one has)')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show dead letters: origin, attempts, exception, decoded headers and payload (-v: every header, the stack trace and the pretty-printed payload)')
            [CompletionResult]::new('replay', 'replay', [CompletionResultType]::ParameterValue, 'Send dead letters back to their topic: preview by default, --execute to replay')
            [CompletionResult]::new('drain', 'drain', [CompletionResultType]::ParameterValue, 'Archive dead letters to a file and mark them handled: preview by default, --execute to drain')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;dlq;list' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'The group whose position marks records as handled')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'The group whose position marks records as handled')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;dlq;inspect' {
            [CompletionResult]::new('--partition', '--partition', [CompletionResultType]::ParameterName, 'Only these partitions (repeatable, or comma-separated)')
            [CompletionResult]::new('--offset-range', '--offset-range', [CompletionResultType]::ParameterName, 'Only offsets FROM to TO, inclusive: `100-250`')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only records written at or after TIME (RFC 3339, a date, or @millis)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Only records written before TIME')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Only records with this key (exact)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Only records with this header value (repeatable; Spring''s binary numbers compare as decimal)')
            [CompletionResult]::new('--exception', '--exception', [CompletionResultType]::ParameterName, 'Only records whose exception class, cause or message contains TEXT (any case)')
            [CompletionResult]::new('--event-type', '--event-type', [CompletionResultType]::ParameterName, 'Only records whose event type is TYPE (e.g. OrderRefundRequested)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Show at most N records (from the oldest)')
            [CompletionResult]::new('--group-by', '--group-by', [CompletionResultType]::ParameterName, 'Summarize instead of listing records')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;dlq;replay' {
            [CompletionResult]::new('--partition', '--partition', [CompletionResultType]::ParameterName, 'Only these partitions (repeatable, or comma-separated)')
            [CompletionResult]::new('--offset-range', '--offset-range', [CompletionResultType]::ParameterName, 'Only offsets FROM to TO, inclusive: `100-250`')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only records written at or after TIME (RFC 3339, a date, or @millis)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Only records written before TIME')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Only records with this key (exact)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Only records with this header value (repeatable; Spring''s binary numbers compare as decimal)')
            [CompletionResult]::new('--exception', '--exception', [CompletionResultType]::ParameterName, 'Only records whose exception class, cause or message contains TEXT (any case)')
            [CompletionResult]::new('--event-type', '--event-type', [CompletionResultType]::ParameterName, 'Only records whose event type is TYPE (e.g. OrderRefundRequested)')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Send every record to TOPIC instead of its original topic')
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'The group whose committed offsets track replay progress')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'The group whose committed offsets track replay progress')
            [CompletionResult]::new('--max-replays', '--max-replays', [CompletionResultType]::ParameterName, 'Refuse records already replayed this many times (poison guard)')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'At most N records per second')
            [CompletionResult]::new('--batch', '--batch', [CompletionResultType]::ParameterName, 'Records per transaction at most; one also ends after 2 s open, so a slow --rate never holds read_committed readers back long')
            [CompletionResult]::new('--from-file', '--from-file', [CompletionResultType]::ParameterName, 'Replay a `dlq drain` archive instead of a topic')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--to-first-retry', '--to-first-retry', [CompletionResultType]::ParameterName, 'Send each record to its original topic''s first retry topic')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replay records past --max-replays too')
            [CompletionResult]::new('--execute', '--execute', [CompletionResultType]::ParameterName, 'Act on the plan; without it, only preview')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (needed without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;dlq;drain' {
            [CompletionResult]::new('--partition', '--partition', [CompletionResultType]::ParameterName, 'Only these partitions (repeatable, or comma-separated)')
            [CompletionResult]::new('--offset-range', '--offset-range', [CompletionResultType]::ParameterName, 'Only offsets FROM to TO, inclusive: `100-250`')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only records written at or after TIME (RFC 3339, a date, or @millis)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Only records written before TIME')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Only records with this key (exact)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Only records with this header value (repeatable; Spring''s binary numbers compare as decimal)')
            [CompletionResult]::new('--exception', '--exception', [CompletionResultType]::ParameterName, 'Only records whose exception class, cause or message contains TEXT (any case)')
            [CompletionResult]::new('--event-type', '--event-type', [CompletionResultType]::ParameterName, 'Only records whose event type is TYPE (e.g. OrderRefundRequested)')
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'The group to move past the drained records')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'The group to move past the drained records')
            [CompletionResult]::new('--archive', '--archive', [CompletionResultType]::ParameterName, 'Where the archive goes [default: the state directory, named after the topic and time]')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--delete', '--delete', [CompletionResultType]::ParameterName, 'Also delete the drained records from the topic (everything up to the group''s new offset)')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'With --delete: allow a financial topic, and records another group has not read yet')
            [CompletionResult]::new('--execute', '--execute', [CompletionResultType]::ParameterName, 'Act on the plan; without it, only preview')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (needed without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;dlq;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every DLT/DLQ topic: records, age, and what the processing group has not handled (exit 1: a financial one has)')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show dead letters: origin, attempts, exception, decoded headers and payload (-v: every header, the stack trace and the pretty-printed payload)')
            [CompletionResult]::new('replay', 'replay', [CompletionResultType]::ParameterValue, 'Send dead letters back to their topic: preview by default, --execute to replay')
            [CompletionResult]::new('drain', 'drain', [CompletionResultType]::ParameterValue, 'Archive dead letters to a file and mark them handled: preview by default, --execute to drain')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;dlq;help;list' {
            break
        }
        'smmctl;dlq;help;inspect' {
            break
        }
        'smmctl;dlq;help;replay' {
            break
        }
        'smmctl;dlq;help;drain' {
            break
        }
        'smmctl;dlq;help;help' {
            break
        }
        'smmctl;offsets' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Move a group''s committed offsets: preview by default, --execute to apply')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;offsets;reset' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'The consumer group')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'The consumer group')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'A topic, optionally with partitions: TOPIC or TOPIC:0,1,2 (repeatable)')
            [CompletionResult]::new('--topic', '--topic', [CompletionResultType]::ParameterName, 'A topic, optionally with partitions: TOPIC or TOPIC:0,1,2 (repeatable)')
            [CompletionResult]::new('--category', '--category', [CompletionResultType]::ParameterName, 'The catalog topics of a category that the group reads or has committed on')
            [CompletionResult]::new('--to-offset', '--to-offset', [CompletionResultType]::ParameterName, 'To this offset on every partition in scope')
            [CompletionResult]::new('--shift-by', '--shift-by', [CompletionResultType]::ParameterName, 'Move by N: negative re-reads, positive skips')
            [CompletionResult]::new('--to-datetime', '--to-datetime', [CompletionResultType]::ParameterName, 'To the first record at or after this time: RFC 3339, or a date and time without zone (UTC)')
            [CompletionResult]::new('--by-duration', '--by-duration', [CompletionResultType]::ParameterName, 'To the first record at or after now minus this: 2h30m, 7d, P1DT2H')
            [CompletionResult]::new('--from-file', '--from-file', [CompletionResultType]::ParameterName, 'Offsets from a CSV: topic,partition,offset or group,topic,partition,offset (an undo file works)')
            [CompletionResult]::new('--export', '--export', [CompletionResultType]::ParameterName, 'Write the plan as a CSV usable with --from-file')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--all-topics', '--all-topics', [CompletionResultType]::ParameterName, 'Every topic the group has committed offsets on')
            [CompletionResult]::new('--to-earliest', '--to-earliest', [CompletionResultType]::ParameterName, 'To the first retained offset (log start)')
            [CompletionResult]::new('--to-latest', '--to-latest', [CompletionResultType]::ParameterName, 'To the log end: skip everything not yet read')
            [CompletionResult]::new('--to-current', '--to-current', [CompletionResultType]::ParameterName, 'To the committed offset (commits it where it is; no-op rows are shown)')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Refuse targets outside the retained range instead of clamping them')
            [CompletionResult]::new('--execute', '--execute', [CompletionResultType]::ParameterName, 'Act on the plan; without it, only preview')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (needed without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;offsets;help' {
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Move a group''s committed offsets: preview by default, --execute to apply')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;offsets;help;reset' {
            break
        }
        'smmctl;offsets;help;help' {
            break
        }
        'smmctl;records' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete records at the start of partitions: preview by default, --execute to delete')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;records;delete' {
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'The topic (not needed with --from-file)')
            [CompletionResult]::new('--topic', '--topic', [CompletionResultType]::ParameterName, 'The topic (not needed with --from-file)')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Only these partitions (repeatable) [default: all]')
            [CompletionResult]::new('--partition', '--partition', [CompletionResultType]::ParameterName, 'Only these partitions (repeatable) [default: all]')
            [CompletionResult]::new('--before-offset', '--before-offset', [CompletionResultType]::ParameterName, 'Delete every record before this offset')
            [CompletionResult]::new('--before-datetime', '--before-datetime', [CompletionResultType]::ParameterName, 'Delete every record before the first one at or after this time')
            [CompletionResult]::new('--older-than', '--older-than', [CompletionResultType]::ParameterName, 'Delete records older than this: 7d, 36h, P1D')
            [CompletionResult]::new('--from-file', '--from-file', [CompletionResultType]::ParameterName, 'Kafka''s delete-records JSON, or CSV topic,partition,offset (-1 or end: the high watermark)')
            [CompletionResult]::new('--max-records', '--max-records', [CompletionResultType]::ParameterName, 'Refuse if more than N records would be deleted in all (a guard for cron jobs)')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Delete everything up to the high watermark')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Allow main and financial topics, and records a group has not read yet')
            [CompletionResult]::new('--execute', '--execute', [CompletionResultType]::ParameterName, 'Act on the plan; without it, only preview')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (needed without a terminal)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;records;help' {
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete records at the start of partitions: preview by default, --execute to delete')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;records;help;delete' {
            break
        }
        'smmctl;records;help;help' {
            break
        }
        'smmctl;health' {
            [CompletionResult]::new('--prometheus', '--prometheus', [CompletionResultType]::ParameterName, 'Also write the results in Prometheus text format to FILE (for node_exporter''s textfile collector)')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--no-produce', '--no-produce', [CompletionResultType]::ParameterName, 'Skip the produce-and-read-back check (for read-only credentials)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;topics' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('apply', 'apply', [CompletionResultType]::ParameterValue, 'Create every catalog topic that is missing (acts by default; --dry-run previews)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Compare the catalog with the cluster: existence, partitions, messages')
            [CompletionResult]::new('orphans', 'orphans', [CompletionResultType]::ParameterValue, 'Cluster topics the catalog does not know, and legacy topics still present')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete topics, after a preview and a confirmation')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;topics;apply' {
            [CompletionResult]::new('--category', '--category', [CompletionResultType]::ParameterName, 'Only topics of this category (repeatable), e.g. payment, order-processing')
            [CompletionResult]::new('--replication-factor', '--replication-factor', [CompletionResultType]::ParameterName, 'Replication factor for new topics [default: the profile''s topics.replication_factor, else 1, the panel''s development default]')
            [CompletionResult]::new('--min-insync-replicas', '--min-insync-replicas', [CompletionResultType]::ParameterName, 'min.insync.replicas for new topics [default: the profile''s topics.min_insync_replicas, else a majority of the replicas from 3 up (2 of 3), else 1]')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show the plan and change nothing')
            [CompletionResult]::new('--skip-legacy', '--skip-legacy', [CompletionResultType]::ParameterName, 'Do not create the deprecated legacy topics')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;topics;list' {
            [CompletionResult]::new('--category', '--category', [CompletionResultType]::ParameterName, 'Only topics of this category (repeatable)')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--problems', '--problems', [CompletionResultType]::ParameterName, 'Only topics that are missing or differ from the catalog')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Exit 1 when a catalog topic is missing or its partition count differs')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;topics;orphans' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Exit 1 when any orphan or legacy topic is found')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;topics;delete' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--execute', '--execute', [CompletionResultType]::ParameterName, 'Act on the plan; without it, only preview')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation (needed without a terminal)')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Allow deleting catalog topics')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;topics;help' {
            [CompletionResult]::new('apply', 'apply', [CompletionResultType]::ParameterValue, 'Create every catalog topic that is missing (acts by default; --dry-run previews)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Compare the catalog with the cluster: existence, partitions, messages')
            [CompletionResult]::new('orphans', 'orphans', [CompletionResultType]::ParameterValue, 'Cluster topics the catalog does not know, and legacy topics still present')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete topics, after a preview and a confirmation')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;topics;help;apply' {
            break
        }
        'smmctl;topics;help;list' {
            break
        }
        'smmctl;topics;help;orphans' {
            break
        }
        'smmctl;topics;help;delete' {
            break
        }
        'smmctl;topics;help;help' {
            break
        }
        'smmctl;config' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective settings and where each came from, secrets masked')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'Print the path of the config file in use, or the default one')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;config;show' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;config;path' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;config;help' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective settings and where each came from, secrets masked')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'Print the path of the config file in use, or the default one')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;config;help;show' {
            break
        }
        'smmctl;config;help;path' {
            break
        }
        'smmctl;config;help;help' {
            break
        }
        'smmctl;audit' {
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only lines at or after TIME (RFC 3339, a date, @millis, or a duration ago such as 7d)')
            [CompletionResult]::new('--command', '--command', [CompletionResultType]::ParameterName, 'Only this command (e.g. "dlq drain", or a prefix such as "dlq")')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;completions' {
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;generate' {
            [CompletionResult]::new('--out-dir', '--out-dir', [CompletionResultType]::ParameterName, 'The folder that holds completions/ and man/')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile of the config file to use (a cluster and its settings)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Config file [default: ~/.config/smmctl/config.toml when it exists]')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Kafka client id')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of read commands')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v for info, -vv for debug (SMM_LOG overrides)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'smmctl;help' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run one of the panel''s workers, or all of them')
            [CompletionResult]::new('simulate', 'simulate', [CompletionResultType]::ParameterValue, 'Send realistic orders through the whole system: webhook, order, delivery, completion')
            [CompletionResult]::new('sandbox', 'sandbox', [CompletionResultType]::ParameterValue, 'Serve local stand-ins for YouTube, the delivery provider, Binom, SMS/push and SMTP')
            [CompletionResult]::new('lag', 'lag', [CompletionResultType]::ParameterValue, 'Consumer lag per group, topic and partition, in messages and in seconds')
            [CompletionResult]::new('groups', 'groups', [CompletionResultType]::ParameterValue, 'List, describe and delete consumer groups')
            [CompletionResult]::new('dlq', 'dlq', [CompletionResultType]::ParameterValue, 'List, inspect, replay and drain dead letters')
            [CompletionResult]::new('offsets', 'offsets', [CompletionResultType]::ParameterValue, 'Reset consumer group offsets, with a preview first')
            [CompletionResult]::new('records', 'records', [CompletionResultType]::ParameterValue, 'Delete records from the start of partitions, with a preview first')
            [CompletionResult]::new('health', 'health', [CompletionResultType]::ParameterValue, 'The panel''s health table and checks, for people and for cron')
            [CompletionResult]::new('topics', 'topics', [CompletionResultType]::ParameterValue, 'Create, compare and clean up the panel''s topics')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Show the effective configuration')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'The trail of executed destructive commands')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Write the checked-in completions and man pages (for maintainers)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'smmctl;help;run' {
            break
        }
        'smmctl;help;simulate' {
            break
        }
        'smmctl;help;sandbox' {
            break
        }
        'smmctl;help;lag' {
            break
        }
        'smmctl;help;groups' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every consumer group: state, protocol, members, and whether it is one of the panel''s')
            [CompletionResult]::new('describe', 'describe', [CompletionResultType]::ParameterValue, 'Members, committed offsets and lag of groups, partition by partition')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a group that has no members, after a preview and a confirmation')
            break
        }
        'smmctl;help;groups;list' {
            break
        }
        'smmctl;help;groups;describe' {
            break
        }
        'smmctl;help;groups;delete' {
            break
        }
        'smmctl;help;dlq' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every DLT/DLQ topic: records, age, and what the processing group has not handled (exit 1: a financial one has)')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show dead letters: origin, attempts, exception, decoded headers and payload (-v: every header, the stack trace and the pretty-printed payload)')
            [CompletionResult]::new('replay', 'replay', [CompletionResultType]::ParameterValue, 'Send dead letters back to their topic: preview by default, --execute to replay')
            [CompletionResult]::new('drain', 'drain', [CompletionResultType]::ParameterValue, 'Archive dead letters to a file and mark them handled: preview by default, --execute to drain')
            break
        }
        'smmctl;help;dlq;list' {
            break
        }
        'smmctl;help;dlq;inspect' {
            break
        }
        'smmctl;help;dlq;replay' {
            break
        }
        'smmctl;help;dlq;drain' {
            break
        }
        'smmctl;help;offsets' {
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Move a group''s committed offsets: preview by default, --execute to apply')
            break
        }
        'smmctl;help;offsets;reset' {
            break
        }
        'smmctl;help;records' {
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete records at the start of partitions: preview by default, --execute to delete')
            break
        }
        'smmctl;help;records;delete' {
            break
        }
        'smmctl;help;health' {
            break
        }
        'smmctl;help;topics' {
            [CompletionResult]::new('apply', 'apply', [CompletionResultType]::ParameterValue, 'Create every catalog topic that is missing (acts by default; --dry-run previews)')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Compare the catalog with the cluster: existence, partitions, messages')
            [CompletionResult]::new('orphans', 'orphans', [CompletionResultType]::ParameterValue, 'Cluster topics the catalog does not know, and legacy topics still present')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete topics, after a preview and a confirmation')
            break
        }
        'smmctl;help;topics;apply' {
            break
        }
        'smmctl;help;topics;list' {
            break
        }
        'smmctl;help;topics;orphans' {
            break
        }
        'smmctl;help;topics;delete' {
            break
        }
        'smmctl;help;config' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective settings and where each came from, secrets masked')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'Print the path of the config file in use, or the default one')
            break
        }
        'smmctl;help;config;show' {
            break
        }
        'smmctl;help;config;path' {
            break
        }
        'smmctl;help;audit' {
            break
        }
        'smmctl;help;completions' {
            break
        }
        'smmctl;help;generate' {
            break
        }
        'smmctl;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
