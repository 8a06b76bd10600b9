# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_smmctl_global_optspecs
    string join \n brokers= profile= config= client-id= X= timeout= o/output= v/verbose h/help V/version
end

function __fish_smmctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_smmctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_smmctl_using_subcommand
    set -l cmd (__fish_smmctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c smmctl -n "__fish_smmctl_needs_command" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_needs_command" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_needs_command" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_needs_command" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_needs_command" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_needs_command" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_needs_command" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_needs_command" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_needs_command" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "run" -d 'Run one of the panel\'s workers, or all of them'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "simulate" -d 'Send realistic orders through the whole system: webhook, order, delivery, completion'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "sandbox" -d 'Serve local stand-ins for YouTube, the delivery provider, Binom, SMS/push and SMTP'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "lag" -d 'Consumer lag per group, topic and partition, in messages and in seconds'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "groups" -d 'List, describe and delete consumer groups'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "dlq" -d 'List, inspect, replay and drain dead letters'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "offsets" -d 'Reset consumer group offsets, with a preview first'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "records" -d 'Delete records from the start of partitions, with a preview first'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "health" -d 'The panel\'s health table and checks, for people and for cron'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "topics" -d 'Create, compare and clean up the panel\'s topics'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "config" -d 'Show the effective configuration'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "audit" -d 'The trail of executed destructive commands'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "generate" -d 'Write the checked-in completions and man pages (for maintainers)'
complete -c smmctl -n "__fish_smmctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l database-url -d 'The panel store: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB [env: SMM_DATABASE_URL]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l metrics-addr -d 'Where /metrics and /health are served [env: SMM_METRICS_ADDR] [default: 127.0.0.1:9464]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l gateway-addr -d 'Where the webhook gateway listens' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l instance -d 'This process\'s stable name, unique among the copies of these workers (a host or pod name): its workers join their groups as static members, so a restart takes its partitions straight back without a rebalance' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l drain-timeout -d 'How long a record in hand may run on after SIGTERM before it is left for redelivery' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l log-format -d 'Log lines as text or JSON' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line, for log shippers'"
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l list -d 'Show each worker with its consumer group, topics and retry ladder, and exit'
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l rebuild -d 'With cqrs: empty the read model and rebuild it from the earliest offset of its topics'
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l force -d 'With --rebuild: rebuild even though retention deleted a topic\'s early events (orders seen only there are lost)'
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -l migrate-legacy -d 'With video: first move the deprecated video.processing.queue into smm.video.processing, exactly once'
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand run" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -l orders -d 'How many orders to send' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -l fail-rate -d 'Share of orders given a fault, from 0 to 1 (0.25: every fourth)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -l gateway -d 'The webhook gateway\'s base URL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -l database-url -d 'The panel store the workers use [env: SMM_DATABASE_URL]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -l wait -d 'How long to follow the orders before giving up' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -l first-order-id -d 'The first order\'s id; the others count up from it (default: from the clock, so runs never collide)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -l no-wait -d 'Send and return at once, without following the orders'
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand simulate" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -l addr -d 'Where the HTTP stand-ins listen' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -l smtp-addr -d 'Where the SMTP server listens' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -l delivery-duration -d 'How long a delivery takes to reach its full quantity' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -l youtube-quota -d 'YouTube units granted before it answers quotaExceeded (default: no limit)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand sandbox" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -s g -l group -d 'Only these groups (repeatable) [default: the panel\'s nine groups]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -s t -l topic -d 'Only these topics (repeatable); without --group, every group reading them' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -l watch -d 'Refresh every INTERVAL and show a status per partition and group' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -l window -d 'With --watch: samples in the status window' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -l count -d 'With --watch: stop after N refreshes [default: run until interrupted]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -l all-groups -d 'Every group on the cluster'
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -l partitions -d 'One row per partition'
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -l summary -d 'One row per group'
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -l no-time -d 'Skip reading record timestamps (no LAG-TIME column; a little faster)'
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand lag" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -f -a "list" -d 'Every consumer group: state, protocol, members, and whether it is one of the panel\'s'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -f -a "describe" -d 'Members, committed offsets and lag of groups, partition by partition'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -f -a "delete" -d 'Delete a group that has no members, after a preview and a confirmation'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and not __fish_seen_subcommand_from list describe delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from list" -l state -d 'Only groups in this state (repeatable): stable, empty, dead, preparing-rebalance, completing-rebalance' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from list" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from list" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from list" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from list" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from list" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from list" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from describe" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from describe" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from describe" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from describe" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from describe" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from describe" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from describe" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from describe" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from describe" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from describe" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from delete" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from delete" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from delete" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from delete" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from delete" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from delete" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from delete" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from delete" -l execute -d 'Act on the plan; without it, only preview'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from delete" -l yes -d 'Do not ask for confirmation (needed without a terminal)'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from help" -f -a "list" -d 'Every consumer group: state, protocol, members, and whether it is one of the panel\'s'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from help" -f -a "describe" -d 'Members, committed offsets and lag of groups, partition by partition'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a group that has no members, after a preview and a confirmation'
complete -c smmctl -n "__fish_smmctl_using_subcommand groups; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -f -a "list" -d 'Every DLT/DLQ topic: records, age, and what the processing group has not handled (exit 1: a financial one has)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -f -a "inspect" -d 'Show dead letters: origin, attempts, exception, decoded headers and payload (-v: every header, the stack trace and the pretty-printed payload)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -f -a "replay" -d 'Send dead letters back to their topic: preview by default, --execute to replay'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -f -a "drain" -d 'Archive dead letters to a file and mark them handled: preview by default, --execute to drain'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and not __fish_seen_subcommand_from list inspect replay drain help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from list" -s g -l group -d 'The group whose position marks records as handled' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from list" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from list" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from list" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from list" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from list" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from list" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l partition -d 'Only these partitions (repeatable, or comma-separated)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l offset-range -d 'Only offsets FROM to TO, inclusive: `100-250`' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l since -d 'Only records written at or after TIME (RFC 3339, a date, or @millis)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l until -d 'Only records written before TIME' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l key -d 'Only records with this key (exact)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l header -d 'Only records with this header value (repeatable; Spring\'s binary numbers compare as decimal)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l exception -d 'Only records whose exception class, cause or message contains TEXT (any case)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l event-type -d 'Only records whose event type is TYPE (e.g. OrderRefundRequested)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l limit -d 'Show at most N records (from the oldest)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l group-by -d 'Summarize instead of listing records' -r -f -a "exception\t'Count by exception class and message: how to triage thousands of records'"
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from inspect" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l partition -d 'Only these partitions (repeatable, or comma-separated)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l offset-range -d 'Only offsets FROM to TO, inclusive: `100-250`' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l since -d 'Only records written at or after TIME (RFC 3339, a date, or @millis)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l until -d 'Only records written before TIME' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l key -d 'Only records with this key (exact)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l header -d 'Only records with this header value (repeatable; Spring\'s binary numbers compare as decimal)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l exception -d 'Only records whose exception class, cause or message contains TEXT (any case)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l event-type -d 'Only records whose event type is TYPE (e.g. OrderRefundRequested)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l to -d 'Send every record to TOPIC instead of its original topic' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -s g -l group -d 'The group whose committed offsets track replay progress' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l max-replays -d 'Refuse records already replayed this many times (poison guard)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l rate -d 'At most N records per second' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l batch -d 'Records per transaction at most; one also ends after 2 s open, so a slow --rate never holds read_committed readers back long' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l from-file -d 'Replay a `dlq drain` archive instead of a topic' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l to-first-retry -d 'Send each record to its original topic\'s first retry topic'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l force -d 'Replay records past --max-replays too'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l execute -d 'Act on the plan; without it, only preview'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -l yes -d 'Do not ask for confirmation (needed without a terminal)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from replay" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l partition -d 'Only these partitions (repeatable, or comma-separated)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l offset-range -d 'Only offsets FROM to TO, inclusive: `100-250`' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l since -d 'Only records written at or after TIME (RFC 3339, a date, or @millis)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l until -d 'Only records written before TIME' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l key -d 'Only records with this key (exact)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l header -d 'Only records with this header value (repeatable; Spring\'s binary numbers compare as decimal)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l exception -d 'Only records whose exception class, cause or message contains TEXT (any case)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l event-type -d 'Only records whose event type is TYPE (e.g. OrderRefundRequested)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -s g -l group -d 'The group to move past the drained records' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l archive -d 'Where the archive goes [default: the state directory, named after the topic and time]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l delete -d 'Also delete the drained records from the topic (everything up to the group\'s new offset)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l force -d 'With --delete: allow a financial topic, and records another group has not read yet'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l execute -d 'Act on the plan; without it, only preview'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -l yes -d 'Do not ask for confirmation (needed without a terminal)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from drain" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from help" -f -a "list" -d 'Every DLT/DLQ topic: records, age, and what the processing group has not handled (exit 1: a financial one has)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from help" -f -a "inspect" -d 'Show dead letters: origin, attempts, exception, decoded headers and payload (-v: every header, the stack trace and the pretty-printed payload)'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from help" -f -a "replay" -d 'Send dead letters back to their topic: preview by default, --execute to replay'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from help" -f -a "drain" -d 'Archive dead letters to a file and mark them handled: preview by default, --execute to drain'
complete -c smmctl -n "__fish_smmctl_using_subcommand dlq; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and not __fish_seen_subcommand_from reset help" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and not __fish_seen_subcommand_from reset help" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and not __fish_seen_subcommand_from reset help" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and not __fish_seen_subcommand_from reset help" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and not __fish_seen_subcommand_from reset help" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and not __fish_seen_subcommand_from reset help" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and not __fish_seen_subcommand_from reset help" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and not __fish_seen_subcommand_from reset help" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and not __fish_seen_subcommand_from reset help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and not __fish_seen_subcommand_from reset help" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and not __fish_seen_subcommand_from reset help" -f -a "reset" -d 'Move a group\'s committed offsets: preview by default, --execute to apply'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and not __fish_seen_subcommand_from reset help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -s g -l group -d 'The consumer group' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -s t -l topic -d 'A topic, optionally with partitions: TOPIC or TOPIC:0,1,2 (repeatable)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l category -d 'The catalog topics of a category that the group reads or has committed on' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l to-offset -d 'To this offset on every partition in scope' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l shift-by -d 'Move by N: negative re-reads, positive skips' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l to-datetime -d 'To the first record at or after this time: RFC 3339, or a date and time without zone (UTC)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l by-duration -d 'To the first record at or after now minus this: 2h30m, 7d, P1DT2H' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l from-file -d 'Offsets from a CSV: topic,partition,offset or group,topic,partition,offset (an undo file works)' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l export -d 'Write the plan as a CSV usable with --from-file' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l all-topics -d 'Every topic the group has committed offsets on'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l to-earliest -d 'To the first retained offset (log start)'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l to-latest -d 'To the log end: skip everything not yet read'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l to-current -d 'To the committed offset (commits it where it is; no-op rows are shown)'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l strict -d 'Refuse targets outside the retained range instead of clamping them'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l execute -d 'Act on the plan; without it, only preview'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -l yes -d 'Do not ask for confirmation (needed without a terminal)'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from reset" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from help" -f -a "reset" -d 'Move a group\'s committed offsets: preview by default, --execute to apply'
complete -c smmctl -n "__fish_smmctl_using_subcommand offsets; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and not __fish_seen_subcommand_from delete help" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and not __fish_seen_subcommand_from delete help" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and not __fish_seen_subcommand_from delete help" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and not __fish_seen_subcommand_from delete help" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and not __fish_seen_subcommand_from delete help" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and not __fish_seen_subcommand_from delete help" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and not __fish_seen_subcommand_from delete help" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and not __fish_seen_subcommand_from delete help" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and not __fish_seen_subcommand_from delete help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and not __fish_seen_subcommand_from delete help" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and not __fish_seen_subcommand_from delete help" -f -a "delete" -d 'Delete records at the start of partitions: preview by default, --execute to delete'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and not __fish_seen_subcommand_from delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -s t -l topic -d 'The topic (not needed with --from-file)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -s p -l partition -d 'Only these partitions (repeatable) [default: all]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l before-offset -d 'Delete every record before this offset' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l before-datetime -d 'Delete every record before the first one at or after this time' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l older-than -d 'Delete records older than this: 7d, 36h, P1D' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l from-file -d 'Kafka\'s delete-records JSON, or CSV topic,partition,offset (-1 or end: the high watermark)' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l max-records -d 'Refuse if more than N records would be deleted in all (a guard for cron jobs)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l all -d 'Delete everything up to the high watermark'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l force -d 'Allow main and financial topics, and records a group has not read yet'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l execute -d 'Act on the plan; without it, only preview'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -l yes -d 'Do not ask for confirmation (needed without a terminal)'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete records at the start of partitions: preview by default, --execute to delete'
complete -c smmctl -n "__fish_smmctl_using_subcommand records; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand health" -l prometheus -d 'Also write the results in Prometheus text format to FILE (for node_exporter\'s textfile collector)' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand health" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand health" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand health" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand health" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand health" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand health" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand health" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand health" -l no-produce -d 'Skip the produce-and-read-back check (for read-only credentials)'
complete -c smmctl -n "__fish_smmctl_using_subcommand health" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand health" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand health" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -f -a "apply" -d 'Create every catalog topic that is missing (acts by default; --dry-run previews)'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -f -a "list" -d 'Compare the catalog with the cluster: existence, partitions, messages'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -f -a "orphans" -d 'Cluster topics the catalog does not know, and legacy topics still present'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -f -a "delete" -d 'Delete topics, after a preview and a confirmation'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and not __fish_seen_subcommand_from apply list orphans delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -l category -d 'Only topics of this category (repeatable), e.g. payment, order-processing' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -l replication-factor -d 'Replication factor for new topics [default: the profile\'s topics.replication_factor, else 1, the panel\'s development default]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -l min-insync-replicas -d 'min.insync.replicas for new topics [default: the profile\'s topics.min_insync_replicas, else a majority of the replicas from 3 up (2 of 3), else 1]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -l dry-run -d 'Show the plan and change nothing'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -l skip-legacy -d 'Do not create the deprecated legacy topics'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from apply" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -l category -d 'Only topics of this category (repeatable)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -l problems -d 'Only topics that are missing or differ from the catalog'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -l check -d 'Exit 1 when a catalog topic is missing or its partition count differs'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from orphans" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from orphans" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from orphans" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from orphans" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from orphans" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from orphans" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from orphans" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from orphans" -l check -d 'Exit 1 when any orphan or legacy topic is found'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from orphans" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from orphans" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from orphans" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -l execute -d 'Act on the plan; without it, only preview'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -l yes -d 'Do not ask for confirmation (needed without a terminal)'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -l force -d 'Allow deleting catalog topics'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from help" -f -a "apply" -d 'Create every catalog topic that is missing (acts by default; --dry-run previews)'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from help" -f -a "list" -d 'Compare the catalog with the cluster: existence, partitions, messages'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from help" -f -a "orphans" -d 'Cluster topics the catalog does not know, and legacy topics still present'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete topics, after a preview and a confirmation'
complete -c smmctl -n "__fish_smmctl_using_subcommand topics; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -f -a "show" -d 'Print the effective settings and where each came from, secrets masked'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -f -a "path" -d 'Print the path of the config file in use, or the default one'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and not __fish_seen_subcommand_from show path help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from show" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from show" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from show" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from show" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from show" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from show" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from path" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from path" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from path" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from path" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from path" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from path" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from path" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from path" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from path" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from path" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print the effective settings and where each came from, secrets masked'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "path" -d 'Print the path of the config file in use, or the default one'
complete -c smmctl -n "__fish_smmctl_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand audit" -l since -d 'Only lines at or after TIME (RFC 3339, a date, @millis, or a duration ago such as 7d)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand audit" -l command -d 'Only this command (e.g. "dlq drain", or a prefix such as "dlq")' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand audit" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand audit" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand audit" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand audit" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand audit" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand audit" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand audit" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand audit" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand audit" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand audit" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand completions" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand completions" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand completions" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand completions" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand completions" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand completions" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand completions" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand completions" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand completions" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand generate" -l out-dir -d 'The folder that holds completions/ and man/' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand generate" -l brokers -d 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand generate" -l profile -d 'Profile of the config file to use (a cluster and its settings)' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand generate" -l config -d 'Config file [default: ~/.config/smmctl/config.toml when it exists]' -r -F
complete -c smmctl -n "__fish_smmctl_using_subcommand generate" -l client-id -d 'Kafka client id' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand generate" -s X -d 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand generate" -l timeout -d 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]' -r
complete -c smmctl -n "__fish_smmctl_using_subcommand generate" -s o -l output -d 'Output format of read commands' -r -f -a "table\t''
json\t''"
complete -c smmctl -n "__fish_smmctl_using_subcommand generate" -s v -l verbose -d 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
complete -c smmctl -n "__fish_smmctl_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smmctl -n "__fish_smmctl_using_subcommand generate" -s V -l version -d 'Print version'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "run" -d 'Run one of the panel\'s workers, or all of them'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "simulate" -d 'Send realistic orders through the whole system: webhook, order, delivery, completion'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "sandbox" -d 'Serve local stand-ins for YouTube, the delivery provider, Binom, SMS/push and SMTP'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "lag" -d 'Consumer lag per group, topic and partition, in messages and in seconds'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "groups" -d 'List, describe and delete consumer groups'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "dlq" -d 'List, inspect, replay and drain dead letters'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "offsets" -d 'Reset consumer group offsets, with a preview first'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "records" -d 'Delete records from the start of partitions, with a preview first'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "health" -d 'The panel\'s health table and checks, for people and for cron'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "topics" -d 'Create, compare and clean up the panel\'s topics'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "config" -d 'Show the effective configuration'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "audit" -d 'The trail of executed destructive commands'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "generate" -d 'Write the checked-in completions and man pages (for maintainers)'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and not __fish_seen_subcommand_from run simulate sandbox lag groups dlq offsets records health topics config audit completions generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from groups" -f -a "list" -d 'Every consumer group: state, protocol, members, and whether it is one of the panel\'s'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from groups" -f -a "describe" -d 'Members, committed offsets and lag of groups, partition by partition'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from groups" -f -a "delete" -d 'Delete a group that has no members, after a preview and a confirmation'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from dlq" -f -a "list" -d 'Every DLT/DLQ topic: records, age, and what the processing group has not handled (exit 1: a financial one has)'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from dlq" -f -a "inspect" -d 'Show dead letters: origin, attempts, exception, decoded headers and payload (-v: every header, the stack trace and the pretty-printed payload)'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from dlq" -f -a "replay" -d 'Send dead letters back to their topic: preview by default, --execute to replay'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from dlq" -f -a "drain" -d 'Archive dead letters to a file and mark them handled: preview by default, --execute to drain'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from offsets" -f -a "reset" -d 'Move a group\'s committed offsets: preview by default, --execute to apply'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from records" -f -a "delete" -d 'Delete records at the start of partitions: preview by default, --execute to delete'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from topics" -f -a "apply" -d 'Create every catalog topic that is missing (acts by default; --dry-run previews)'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from topics" -f -a "list" -d 'Compare the catalog with the cluster: existence, partitions, messages'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from topics" -f -a "orphans" -d 'Cluster topics the catalog does not know, and legacy topics still present'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from topics" -f -a "delete" -d 'Delete topics, after a preview and a confirmation'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'Print the effective settings and where each came from, secrets masked'
complete -c smmctl -n "__fish_smmctl_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "path" -d 'Print the path of the config file in use, or the default one'
