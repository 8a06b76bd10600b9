
use builtin;
use str;

set edit:completion:arg-completer[smmctl] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'smmctl'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'smmctl'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand run 'Run one of the panel''s workers, or all of them'
            cand simulate 'Send realistic orders through the whole system: webhook, order, delivery, completion'
            cand sandbox 'Serve local stand-ins for YouTube, the delivery provider, Binom, SMS/push and SMTP'
            cand lag 'Consumer lag per group, topic and partition, in messages and in seconds'
            cand groups 'List, describe and delete consumer groups'
            cand dlq 'List, inspect, replay and drain dead letters'
            cand offsets 'Reset consumer group offsets, with a preview first'
            cand records 'Delete records from the start of partitions, with a preview first'
            cand health 'The panel''s health table and checks, for people and for cron'
            cand topics 'Create, compare and clean up the panel''s topics'
            cand config 'Show the effective configuration'
            cand audit 'The trail of executed destructive commands'
            cand completions 'Print a shell completion script to stdout'
            cand generate 'Write the checked-in completions and man pages (for maintainers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;run'= {
            cand --database-url 'The panel store: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB [env: SMM_DATABASE_URL]'
            cand --metrics-addr 'Where /metrics and /health are served [env: SMM_METRICS_ADDR] [default: 127.0.0.1:9464]'
            cand --gateway-addr 'Where the webhook gateway listens'
            cand --instance 'This process''s stable name, unique among the copies of these workers (a host or pod name): its workers join their groups as static members, so a restart takes its partitions straight back without a rebalance'
            cand --drain-timeout 'How long a record in hand may run on after SIGTERM before it is left for redelivery'
            cand --log-format 'Log lines as text or JSON'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --list 'Show each worker with its consumer group, topics and retry ladder, and exit'
            cand --rebuild 'With cqrs: empty the read model and rebuild it from the earliest offset of its topics'
            cand --force 'With --rebuild: rebuild even though retention deleted a topic''s early events (orders seen only there are lost)'
            cand --migrate-legacy 'With video: first move the deprecated video.processing.queue into smm.video.processing, exactly once'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;simulate'= {
            cand --orders 'How many orders to send'
            cand --fail-rate 'Share of orders given a fault, from 0 to 1 (0.25: every fourth)'
            cand --gateway 'The webhook gateway''s base URL'
            cand --database-url 'The panel store the workers use [env: SMM_DATABASE_URL]'
            cand --wait 'How long to follow the orders before giving up'
            cand --first-order-id 'The first order''s id; the others count up from it (default: from the clock, so runs never collide)'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --no-wait 'Send and return at once, without following the orders'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;sandbox'= {
            cand --addr 'Where the HTTP stand-ins listen'
            cand --smtp-addr 'Where the SMTP server listens'
            cand --delivery-duration 'How long a delivery takes to reach its full quantity'
            cand --youtube-quota 'YouTube units granted before it answers quotaExceeded (default: no limit)'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;lag'= {
            cand -g 'Only these groups (repeatable) [default: the panel''s nine groups]'
            cand --group 'Only these groups (repeatable) [default: the panel''s nine groups]'
            cand -t 'Only these topics (repeatable); without --group, every group reading them'
            cand --topic 'Only these topics (repeatable); without --group, every group reading them'
            cand --watch 'Refresh every INTERVAL and show a status per partition and group'
            cand --window 'With --watch: samples in the status window'
            cand --count 'With --watch: stop after N refreshes [default: run until interrupted]'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --all-groups 'Every group on the cluster'
            cand --partitions 'One row per partition'
            cand --summary 'One row per group'
            cand --no-time 'Skip reading record timestamps (no LAG-TIME column; a little faster)'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;groups'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'Every consumer group: state, protocol, members, and whether it is one of the panel''s'
            cand describe 'Members, committed offsets and lag of groups, partition by partition'
            cand delete 'Delete a group that has no members, after a preview and a confirmation'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;groups;list'= {
            cand --state 'Only groups in this state (repeatable): stable, empty, dead, preparing-rebalance, completing-rebalance'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;groups;describe'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;groups;delete'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --execute 'Act on the plan; without it, only preview'
            cand --yes 'Do not ask for confirmation (needed without a terminal)'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;groups;help'= {
            cand list 'Every consumer group: state, protocol, members, and whether it is one of the panel''s'
            cand describe 'Members, committed offsets and lag of groups, partition by partition'
            cand delete 'Delete a group that has no members, after a preview and a confirmation'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;groups;help;list'= {
        }
        &'smmctl;groups;help;describe'= {
        }
        &'smmctl;groups;help;delete'= {
        }
        &'smmctl;groups;help;help'= {
        }
        &'smmctl;dlq'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'Every DLT/DLQ topic: records, age, and what the processing group has not handled (exit 1: a financial one has)'
            cand inspect 'Show dead letters: origin, attempts, exception, decoded headers and payload (-v: every header, the stack trace and the pretty-printed payload)'
            cand replay 'Send dead letters back to their topic: preview by default, --execute to replay'
            cand drain 'Archive dead letters to a file and mark them handled: preview by default, --execute to drain'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;dlq;list'= {
            cand -g 'The group whose position marks records as handled'
            cand --group 'The group whose position marks records as handled'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;dlq;inspect'= {
            cand --partition 'Only these partitions (repeatable, or comma-separated)'
            cand --offset-range 'Only offsets FROM to TO, inclusive: `100-250`'
            cand --since 'Only records written at or after TIME (RFC 3339, a date, or @millis)'
            cand --until 'Only records written before TIME'
            cand --key 'Only records with this key (exact)'
            cand --header 'Only records with this header value (repeatable; Spring''s binary numbers compare as decimal)'
            cand --exception 'Only records whose exception class, cause or message contains TEXT (any case)'
            cand --event-type 'Only records whose event type is TYPE (e.g. OrderRefundRequested)'
            cand --limit 'Show at most N records (from the oldest)'
            cand --group-by 'Summarize instead of listing records'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;dlq;replay'= {
            cand --partition 'Only these partitions (repeatable, or comma-separated)'
            cand --offset-range 'Only offsets FROM to TO, inclusive: `100-250`'
            cand --since 'Only records written at or after TIME (RFC 3339, a date, or @millis)'
            cand --until 'Only records written before TIME'
            cand --key 'Only records with this key (exact)'
            cand --header 'Only records with this header value (repeatable; Spring''s binary numbers compare as decimal)'
            cand --exception 'Only records whose exception class, cause or message contains TEXT (any case)'
            cand --event-type 'Only records whose event type is TYPE (e.g. OrderRefundRequested)'
            cand --to 'Send every record to TOPIC instead of its original topic'
            cand -g 'The group whose committed offsets track replay progress'
            cand --group 'The group whose committed offsets track replay progress'
            cand --max-replays 'Refuse records already replayed this many times (poison guard)'
            cand --rate 'At most N records per second'
            cand --batch 'Records per transaction at most; one also ends after 2 s open, so a slow --rate never holds read_committed readers back long'
            cand --from-file 'Replay a `dlq drain` archive instead of a topic'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --to-first-retry 'Send each record to its original topic''s first retry topic'
            cand --force 'Replay records past --max-replays too'
            cand --execute 'Act on the plan; without it, only preview'
            cand --yes 'Do not ask for confirmation (needed without a terminal)'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;dlq;drain'= {
            cand --partition 'Only these partitions (repeatable, or comma-separated)'
            cand --offset-range 'Only offsets FROM to TO, inclusive: `100-250`'
            cand --since 'Only records written at or after TIME (RFC 3339, a date, or @millis)'
            cand --until 'Only records written before TIME'
            cand --key 'Only records with this key (exact)'
            cand --header 'Only records with this header value (repeatable; Spring''s binary numbers compare as decimal)'
            cand --exception 'Only records whose exception class, cause or message contains TEXT (any case)'
            cand --event-type 'Only records whose event type is TYPE (e.g. OrderRefundRequested)'
            cand -g 'The group to move past the drained records'
            cand --group 'The group to move past the drained records'
            cand --archive 'Where the archive goes [default: the state directory, named after the topic and time]'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --delete 'Also delete the drained records from the topic (everything up to the group''s new offset)'
            cand --force 'With --delete: allow a financial topic, and records another group has not read yet'
            cand --execute 'Act on the plan; without it, only preview'
            cand --yes 'Do not ask for confirmation (needed without a terminal)'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;dlq;help'= {
            cand list 'Every DLT/DLQ topic: records, age, and what the processing group has not handled (exit 1: a financial one has)'
            cand inspect 'Show dead letters: origin, attempts, exception, decoded headers and payload (-v: every header, the stack trace and the pretty-printed payload)'
            cand replay 'Send dead letters back to their topic: preview by default, --execute to replay'
            cand drain 'Archive dead letters to a file and mark them handled: preview by default, --execute to drain'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;dlq;help;list'= {
        }
        &'smmctl;dlq;help;inspect'= {
        }
        &'smmctl;dlq;help;replay'= {
        }
        &'smmctl;dlq;help;drain'= {
        }
        &'smmctl;dlq;help;help'= {
        }
        &'smmctl;offsets'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand reset 'Move a group''s committed offsets: preview by default, --execute to apply'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;offsets;reset'= {
            cand -g 'The consumer group'
            cand --group 'The consumer group'
            cand -t 'A topic, optionally with partitions: TOPIC or TOPIC:0,1,2 (repeatable)'
            cand --topic 'A topic, optionally with partitions: TOPIC or TOPIC:0,1,2 (repeatable)'
            cand --category 'The catalog topics of a category that the group reads or has committed on'
            cand --to-offset 'To this offset on every partition in scope'
            cand --shift-by 'Move by N: negative re-reads, positive skips'
            cand --to-datetime 'To the first record at or after this time: RFC 3339, or a date and time without zone (UTC)'
            cand --by-duration 'To the first record at or after now minus this: 2h30m, 7d, P1DT2H'
            cand --from-file 'Offsets from a CSV: topic,partition,offset or group,topic,partition,offset (an undo file works)'
            cand --export 'Write the plan as a CSV usable with --from-file'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --all-topics 'Every topic the group has committed offsets on'
            cand --to-earliest 'To the first retained offset (log start)'
            cand --to-latest 'To the log end: skip everything not yet read'
            cand --to-current 'To the committed offset (commits it where it is; no-op rows are shown)'
            cand --strict 'Refuse targets outside the retained range instead of clamping them'
            cand --execute 'Act on the plan; without it, only preview'
            cand --yes 'Do not ask for confirmation (needed without a terminal)'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;offsets;help'= {
            cand reset 'Move a group''s committed offsets: preview by default, --execute to apply'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;offsets;help;reset'= {
        }
        &'smmctl;offsets;help;help'= {
        }
        &'smmctl;records'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand delete 'Delete records at the start of partitions: preview by default, --execute to delete'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;records;delete'= {
            cand -t 'The topic (not needed with --from-file)'
            cand --topic 'The topic (not needed with --from-file)'
            cand -p 'Only these partitions (repeatable) [default: all]'
            cand --partition 'Only these partitions (repeatable) [default: all]'
            cand --before-offset 'Delete every record before this offset'
            cand --before-datetime 'Delete every record before the first one at or after this time'
            cand --older-than 'Delete records older than this: 7d, 36h, P1D'
            cand --from-file 'Kafka''s delete-records JSON, or CSV topic,partition,offset (-1 or end: the high watermark)'
            cand --max-records 'Refuse if more than N records would be deleted in all (a guard for cron jobs)'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --all 'Delete everything up to the high watermark'
            cand --force 'Allow main and financial topics, and records a group has not read yet'
            cand --execute 'Act on the plan; without it, only preview'
            cand --yes 'Do not ask for confirmation (needed without a terminal)'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;records;help'= {
            cand delete 'Delete records at the start of partitions: preview by default, --execute to delete'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;records;help;delete'= {
        }
        &'smmctl;records;help;help'= {
        }
        &'smmctl;health'= {
            cand --prometheus 'Also write the results in Prometheus text format to FILE (for node_exporter''s textfile collector)'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --no-produce 'Skip the produce-and-read-back check (for read-only credentials)'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;topics'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand apply 'Create every catalog topic that is missing (acts by default; --dry-run previews)'
            cand list 'Compare the catalog with the cluster: existence, partitions, messages'
            cand orphans 'Cluster topics the catalog does not know, and legacy topics still present'
            cand delete 'Delete topics, after a preview and a confirmation'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;topics;apply'= {
            cand --category 'Only topics of this category (repeatable), e.g. payment, order-processing'
            cand --replication-factor 'Replication factor for new topics [default: the profile''s topics.replication_factor, else 1, the panel''s development default]'
            cand --min-insync-replicas 'min.insync.replicas for new topics [default: the profile''s topics.min_insync_replicas, else a majority of the replicas from 3 up (2 of 3), else 1]'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --dry-run 'Show the plan and change nothing'
            cand --skip-legacy 'Do not create the deprecated legacy topics'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;topics;list'= {
            cand --category 'Only topics of this category (repeatable)'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --problems 'Only topics that are missing or differ from the catalog'
            cand --check 'Exit 1 when a catalog topic is missing or its partition count differs'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;topics;orphans'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --check 'Exit 1 when any orphan or legacy topic is found'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;topics;delete'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand --execute 'Act on the plan; without it, only preview'
            cand --yes 'Do not ask for confirmation (needed without a terminal)'
            cand --force 'Allow deleting catalog topics'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;topics;help'= {
            cand apply 'Create every catalog topic that is missing (acts by default; --dry-run previews)'
            cand list 'Compare the catalog with the cluster: existence, partitions, messages'
            cand orphans 'Cluster topics the catalog does not know, and legacy topics still present'
            cand delete 'Delete topics, after a preview and a confirmation'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;topics;help;apply'= {
        }
        &'smmctl;topics;help;list'= {
        }
        &'smmctl;topics;help;orphans'= {
        }
        &'smmctl;topics;help;delete'= {
        }
        &'smmctl;topics;help;help'= {
        }
        &'smmctl;config'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand show 'Print the effective settings and where each came from, secrets masked'
            cand path 'Print the path of the config file in use, or the default one'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;config;show'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;config;path'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;config;help'= {
            cand show 'Print the effective settings and where each came from, secrets masked'
            cand path 'Print the path of the config file in use, or the default one'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;config;help;show'= {
        }
        &'smmctl;config;help;path'= {
        }
        &'smmctl;config;help;help'= {
        }
        &'smmctl;audit'= {
            cand --since 'Only lines at or after TIME (RFC 3339, a date, @millis, or a duration ago such as 7d)'
            cand --command 'Only this command (e.g. "dlq drain", or a prefix such as "dlq")'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;completions'= {
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;generate'= {
            cand --out-dir 'The folder that holds completions/ and man/'
            cand --brokers 'Kafka bootstrap servers, host:port separated by commas [default: 127.0.0.1:9092]'
            cand --profile 'Profile of the config file to use (a cluster and its settings)'
            cand --config 'Config file [default: ~/.config/smmctl/config.toml when it exists]'
            cand --client-id 'Kafka client id'
            cand -X 'A librdkafka property, passed through (repeatable), e.g. -X security.protocol=SASL_SSL'
            cand --timeout 'How long to wait for the brokers before giving up, e.g. 10s, 500ms [default: 10s]'
            cand -o 'Output format of read commands'
            cand --output 'Output format of read commands'
            cand -v 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand --verbose 'Log more: -v for info, -vv for debug (SMM_LOG overrides)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'smmctl;help'= {
            cand run 'Run one of the panel''s workers, or all of them'
            cand simulate 'Send realistic orders through the whole system: webhook, order, delivery, completion'
            cand sandbox 'Serve local stand-ins for YouTube, the delivery provider, Binom, SMS/push and SMTP'
            cand lag 'Consumer lag per group, topic and partition, in messages and in seconds'
            cand groups 'List, describe and delete consumer groups'
            cand dlq 'List, inspect, replay and drain dead letters'
            cand offsets 'Reset consumer group offsets, with a preview first'
            cand records 'Delete records from the start of partitions, with a preview first'
            cand health 'The panel''s health table and checks, for people and for cron'
            cand topics 'Create, compare and clean up the panel''s topics'
            cand config 'Show the effective configuration'
            cand audit 'The trail of executed destructive commands'
            cand completions 'Print a shell completion script to stdout'
            cand generate 'Write the checked-in completions and man pages (for maintainers)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'smmctl;help;run'= {
        }
        &'smmctl;help;simulate'= {
        }
        &'smmctl;help;sandbox'= {
        }
        &'smmctl;help;lag'= {
        }
        &'smmctl;help;groups'= {
            cand list 'Every consumer group: state, protocol, members, and whether it is one of the panel''s'
            cand describe 'Members, committed offsets and lag of groups, partition by partition'
            cand delete 'Delete a group that has no members, after a preview and a confirmation'
        }
        &'smmctl;help;groups;list'= {
        }
        &'smmctl;help;groups;describe'= {
        }
        &'smmctl;help;groups;delete'= {
        }
        &'smmctl;help;dlq'= {
            cand list 'Every DLT/DLQ topic: records, age, and what the processing group has not handled (exit 1: a financial one has)'
            cand inspect 'Show dead letters: origin, attempts, exception, decoded headers and payload (-v: every header, the stack trace and the pretty-printed payload)'
            cand replay 'Send dead letters back to their topic: preview by default, --execute to replay'
            cand drain 'Archive dead letters to a file and mark them handled: preview by default, --execute to drain'
        }
        &'smmctl;help;dlq;list'= {
        }
        &'smmctl;help;dlq;inspect'= {
        }
        &'smmctl;help;dlq;replay'= {
        }
        &'smmctl;help;dlq;drain'= {
        }
        &'smmctl;help;offsets'= {
            cand reset 'Move a group''s committed offsets: preview by default, --execute to apply'
        }
        &'smmctl;help;offsets;reset'= {
        }
        &'smmctl;help;records'= {
            cand delete 'Delete records at the start of partitions: preview by default, --execute to delete'
        }
        &'smmctl;help;records;delete'= {
        }
        &'smmctl;help;health'= {
        }
        &'smmctl;help;topics'= {
            cand apply 'Create every catalog topic that is missing (acts by default; --dry-run previews)'
            cand list 'Compare the catalog with the cluster: existence, partitions, messages'
            cand orphans 'Cluster topics the catalog does not know, and legacy topics still present'
            cand delete 'Delete topics, after a preview and a confirmation'
        }
        &'smmctl;help;topics;apply'= {
        }
        &'smmctl;help;topics;list'= {
        }
        &'smmctl;help;topics;orphans'= {
        }
        &'smmctl;help;topics;delete'= {
        }
        &'smmctl;help;config'= {
            cand show 'Print the effective settings and where each came from, secrets masked'
            cand path 'Print the path of the config file in use, or the default one'
        }
        &'smmctl;help;config;show'= {
        }
        &'smmctl;help;config;path'= {
        }
        &'smmctl;help;audit'= {
        }
        &'smmctl;help;completions'= {
        }
        &'smmctl;help;generate'= {
        }
        &'smmctl;help;help'= {
        }
    ]
    $completions[$command]
}
