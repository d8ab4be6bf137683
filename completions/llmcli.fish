function _llmcli_completion;
    set -l response (env _LLMCLI_COMPLETE=fish_complete COMP_WORDS=(commandline -cp) \
COMP_CWORD=(commandline -t) llmcli);

    if test -z "$response";
        __fish_complete_path (commandline -ct);
        return;
    end;

    for completion in $response;
        set -l metadata (string split -m 1 "," -- $completion);

        if test $metadata[1] = "dir";
            __fish_complete_directories $metadata[2];
        else if test $metadata[1] = "file";
            __fish_complete_path $metadata[2];
        else if test $metadata[1] = "plain";
            echo $metadata[2];
        end;
    end;
end;

complete --no-files --command llmcli --arguments "(_llmcli_completion)";
